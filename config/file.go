package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// readFile reads the YAML file at path into typed values by key. A key set
// to null (or a section left empty) keeps its default. Every unknown key,
// mistyped value and misplaced section is reported, each naming the key.
func readFile(path string) (map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("config file %s: larger than %d bytes", path, maxFileBytes)
	}
	values, err := parseYAML(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return values, nil
}

// parseYAML decodes one YAML document whose top level is a mapping of
// sections and keys.
func parseYAML(data []byte) (map[string]any, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	values := map[string]any{}
	if doc == nil { // empty file, or only comments
		return values, nil
	}
	m, ok := asMap(doc)
	if !ok {
		return nil, fmt.Errorf("the top level is %s, not a mapping of keys", show(doc))
	}
	var errs []error
	flatten("", m, values, &errs)
	return values, errors.Join(errs...)
}

// asMap returns the entries of a YAML mapping with their keys as written.
// Non-string keys are turned into text so they can be reported as unknown.
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[fmt.Sprint(k)] = val
		}
		return out, true
	}
	return nil, false
}

// flatten walks m, a mapping at section prefix ("" or "sfu."), into values.
// Keys match case-insensitively, as viper's do.
func flatten(prefix string, m map[string]any, values map[string]any, errs *[]error) {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names) // stable error order
	t := keys()
	for _, name := range names {
		raw := m[name]
		key := prefix + strings.ToLower(name)
		if l, ok := t.byKey[key]; ok {
			if raw == nil {
				continue
			}
			if _, dup := values[key]; dup {
				*errs = append(*errs, fmt.Errorf("%s: set twice (keys are not case-sensitive)", key))
				continue
			}
			val, err := l.coerce(raw)
			if err != nil {
				*errs = append(*errs, fmt.Errorf("%s: %w", key, err))
				continue
			}
			values[key] = val
			continue
		}
		if t.sections[key] {
			if raw == nil {
				continue
			}
			sub, ok := asMap(raw)
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: %s is not a mapping of keys", key, show(raw)))
				continue
			}
			flatten(key+".", sub, values, errs)
			continue
		}
		if key == "dev" {
			*errs = append(*errs, errors.New("dev: "+errDevKey))
			continue
		}
		*errs = append(*errs, fmt.Errorf("%s: unknown key%s", quoteKey(key), suggest(key, t.keyNames())))
	}
}

// quoteKey returns key as is when it is plain text, quoted otherwise, so
// odd keys from a hostile file cannot garble the message.
func quoteKey(key string) string {
	if len(key) > 64 {
		key = key[:64] + "..."
	}
	for _, r := range key {
		if !(r == '.' || r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return fmt.Sprintf("%q", key)
		}
	}
	return key
}
