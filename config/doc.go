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
// # What viper does here, and what it does not
//
// Load leaves to spf13/viper what it does without changing what a user sees:
// the defaults go in with SetDefault; the file and then the environment go
// into viper's config map with MergeConfigMap, the environment merged over
// the file; the five flags are bound with BindPFlag, and viper puts a flag
// that was given over the config map; UnmarshalExact decodes the result into
// Config and refuses a key Config lacks. The flags are a pflag.FlagSet, the
// kind viper binds; Load still answers -h with the standard flag.ErrHelp.
//
// Three things viper would do are done in this package instead, because
// viper (v1.21.0, decoding with mapstructure v2.4.0) does them differently:
//
// Reading the file (readFile and parseYAML in file.go). viper.ReadConfig
// lowercases the keys as it reads them, so "level: info" and "LEVEL: debug"
// in one section silently become one key, one of the two values winning; parseYAML
// refuses them as set twice. Viper finds no mistake in a file until
// UnmarshalExact, which reports it in mapstructure's words (left) where this
// package names the key and the problem (right):
//
//	'sfu' has invalid keys: udp_prot          sfu.udp_prot: unknown key (did you mean sfu.udp_port?)
//	'' has invalid keys: media                media: unknown key
//	'sfu' expected a map or struct, got "int" sfu: 5 is not a mapping of keys
//	'' has invalid keys: dev                  dev: only the --dev flag enables dev mode
//
// Viper also reads a file of any size.
//
// Reading the environment (parseEnviron in load.go). BindEnv and AutomaticEnv
// read the process's environment with os.LookupEnv, and viper has no way to
// give them another, while Load reads the environ it is passed (the tests
// load different environments in parallel). Viper only looks up the
// variables of keys it knows, so a misspelt HALO_SFU_UDP_PROT or a HALO_DEV
// would be ignored without a word instead of refused. It treats an empty
// variable as unset unless AllowEmptyEnv is called. And a bad value reaches
// the decoder mixed with the other layers, so it is reported as
// "'sfu.udp_port' cannot parse value as 'int': strconv.ParseInt: invalid
// syntax", naming neither the variable nor the value.
//
// Converting values (coerce in keys.go). Viper decodes with mapstructure's
// weakly typed input and two hooks, one for durations and one splitting
// strings at commas. Weak typing is too lenient for a configuration:
// "udp_port: true" becomes 1, "udp_port: 1.5" becomes 1 and
// "include_loopback: 1" becomes true. With weak typing off, mapstructure still
// turns 1.5 into 1 and "token_ttl: 24" into 24 nanoseconds, and it then
// refuses "password: 123456", a number to YAML but text to the user. The
// comma hook keeps the spaces and empty items ("a, b" gives "a" and " b").
// So coerce converts each value where it is read, from the file or the
// environment, and its error names that key or variable; viper only ever
// sees values of the field's type, and its hooks have nothing left to do.
//
// The package imports none of the project's other packages: everything may
// import config, config imports nothing of ours. It must not start
// goroutines, touch the network, or read process-global state other than the
// host name and the file it is told to read: args and environment are passed
// in.
package config
