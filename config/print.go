package config

import (
	"bytes"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// mask replaces a secret that is set in MaskedYAML.
const mask = "******"

// secretKeys are the keys whose values MaskedYAML never shows.
var secretKeys = map[string]bool{
	"auth.secret":     true,
	"redis.password":  true,
	"cluster.secret":  true,
	"turn.secret":     true,
	"webhooks.secret": true,

	"redis.sentinel_password": true,
}

// MaskedYAML renders the configuration as YAML, keys in the order of the
// struct, durations written as in the file ("500ms", "24h"). Secrets
// (auth.secret, redis.password, redis.sentinel_password, cluster.secret, turn.secret) appear as "******" when set and "" when not,
// so the output is safe to log or paste into a bug report.
func (c *Config) MaskedYAML() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	sections := map[string]*yaml.Node{}
	for _, l := range keys().leaves {
		parent, name := root, l.key
		if section, rest, ok := strings.Cut(l.key, "."); ok {
			parent, name = sections[section], rest
			if parent == nil {
				parent = &yaml.Node{Kind: yaml.MappingNode}
				sections[section] = parent
				root.Content = append(root.Content, scalar(section), parent)
			}
		}
		val, err := valueNode(l, l.value(c))
		if err != nil {
			return nil, err
		}
		parent.Content = append(parent.Content, scalar(name), val)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// valueNode encodes one value, masked if secret.
func valueNode(l leaf, v reflect.Value) (*yaml.Node, error) {
	var out any = v.Interface()
	switch {
	case secretKeys[l.key]:
		if v.String() != "" {
			out = mask
		}
	case l.typ == durationType:
		out = formatDuration(v.Interface().(time.Duration))
	case l.typ == stringSliceType && v.Len() == 0:
		out = []string{} // "[]", not null
	}
	n := &yaml.Node{}
	if err := n.Encode(out); err != nil {
		return nil, err
	}
	if n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	return n, nil
}

// formatDuration is time.Duration.String without trailing zero units:
// "24h" rather than "24h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
