// Package config owns the typed configuration of the halo-sfu server: its
// defaults, how they are overridden, and what makes a configuration valid.
//
// The effective configuration is built in layers, each overriding the one
// before it:
//
//  1. built-in defaults ([Default]);
//  2. the YAML file named by --config (or HALO_CONFIG), whose keys mirror the
//     mapstructure tags of [Config] (see config.example.yaml at the repository
//     root, which documents every key);
//  3. HALO_* environment variables: the key upper-cased with dots turned into
//     underscores, so sfu.udp_port is HALO_SFU_UDP_PORT; list values are comma
//     separated;
//  4. command-line flags (--http.listen, --sfu.udp_port, ...).
//
// [Load] does the layering and validates the result, so a caller never holds
// an invalid configuration by accident. Mistakes are loud: an unknown key in
// the file, an unknown HALO_* variable or a value of the wrong type is an
// error naming the key or variable, and [Config.Validate] reports every
// problem at once, each as "key: value reason".
//
// Outside dev mode the server refuses to start without a real auth secret;
// in dev mode Load generates one.
//
// The package imports none of the project's other packages: everything may
// import config, config imports nothing of ours. It must not start
// goroutines, touch the network, or read process-global state other than the
// host name and the file it is told to read: args and environment are passed
// in.
package config
