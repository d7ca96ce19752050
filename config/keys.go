package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// leaf is one configuration key: a field of Config reached through sections.
type leaf struct {
	key   string       // "sfu.udp_port"
	env   string       // "HALO_SFU_UDP_PORT"
	index []int        // field path for reflect.Value.FieldByIndex
	typ   reflect.Type // bool, int, string, time.Duration or []string
}

// envPrefix starts every environment variable the package reads.
const envPrefix = "HALO_"

// envConfigFile names the config file when --config is not given.
const envConfigFile = envPrefix + "CONFIG"

var (
	durationType    = reflect.TypeFor[time.Duration]()
	stringSliceType = reflect.TypeFor[[]string]()
)

// keyTable is every key of Config in declaration order, with lookups by key,
// by environment variable, and the set of section names ("sfu").
type keyTable struct {
	leaves   []leaf
	byKey    map[string]leaf
	byEnv    map[string]leaf
	sections map[string]bool
}

// keys returns the table, built once from the Config type.
var keys = sync.OnceValue(func() *keyTable {
	t := &keyTable{
		byKey:    map[string]leaf{},
		byEnv:    map[string]leaf{},
		sections: map[string]bool{},
	}
	t.walk(reflect.TypeFor[Config](), "", nil)
	return t
})

func (t *keyTable) walk(typ reflect.Type, prefix string, index []int) {
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("mapstructure")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		key := prefix + name
		idx := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			t.sections[key] = true
			t.walk(f.Type, key+".", idx)
			continue
		}
		switch f.Type {
		case reflect.TypeFor[bool](), reflect.TypeFor[int](), reflect.TypeFor[string](),
			durationType, stringSliceType:
		default:
			panic(fmt.Sprintf("config: key %s has unsupported type %s", key, f.Type))
		}
		l := leaf{
			key:   key,
			env:   envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_")),
			index: idx,
			typ:   f.Type,
		}
		if _, dup := t.byEnv[l.env]; dup {
			panic("config: two keys map to " + l.env)
		}
		t.leaves = append(t.leaves, l)
		t.byKey[key] = l
		t.byEnv[l.env] = l
	}
}

// value returns the field of c that l names.
func (l leaf) value(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(l.index)
}

// coerce converts raw, a value from the YAML file (any YAML scalar or list)
// or from the environment (a string), to the Go type of l. The error names
// neither key nor source; callers add them.
func (l leaf) coerce(raw any) (any, error) {
	switch l.typ {
	case durationType:
		return toDuration(raw)
	case stringSliceType:
		return toStrings(raw)
	}
	switch l.typ.Kind() {
	case reflect.Bool:
		return toBool(raw)
	case reflect.Int:
		return toInt(raw)
	default:
		return toString(raw)
	}
}

func toBool(raw any) (bool, error) {
	switch v := raw.(type) {
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("%s is not a boolean (true or false)", show(raw))
}

func toInt(raw any) (int, error) {
	switch v := raw.(type) {
	case int: // the YAML decoder gives int64 or uint64 only beyond int's range
		return v, nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= 1<<53 {
			return int(v), nil
		}
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s is not an integer", show(raw))
}

func toString(raw any) (string, error) {
	switch v := raw.(type) {
	case string:
		return v, nil
	case bool, int, int64, uint64, float64:
		// YAML reads `password: 123456` as a number; the user meant text.
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("%s is not a string", show(raw))
}

func toDuration(raw any) (time.Duration, error) {
	switch v := raw.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err == nil {
			return d, nil
		}
	case int:
		if v == 0 {
			return 0, nil
		}
		// A bare number would silently be nanoseconds.
		return 0, fmt.Errorf("%d needs a unit, such as %ds or %dms", v, v, v)
	}
	return 0, fmt.Errorf("%s is not a duration such as 500ms, 10s or 24h", show(raw))
}

// toStrings accepts a YAML list of scalars or one comma separated string.
// An empty list is returned as an empty, non-nil slice so that it overrides a
// non-empty default.
func toStrings(raw any) ([]string, error) {
	out := []string{}
	switch v := raw.(type) {
	case string:
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
		return out, nil
	case []any:
		for _, item := range v {
			s, err := toString(item)
			if err != nil {
				return nil, fmt.Errorf("list item %w", err)
			}
			out = append(out, strings.TrimSpace(s))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is not a list of strings", show(raw))
}

// show formats a raw value for an error message, briefly.
func show(raw any) string {
	switch v := raw.(type) {
	case string:
		if len(v) > 64 {
			v = v[:64] + "..."
		}
		return strconv.Quote(v)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case nil:
		return "null"
	}
	s := fmt.Sprint(raw)
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return s
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to name,
// or "" when none is close enough to be a likely typo.
func suggest(name string, candidates []string) string {
	best, bestDist := "", 4
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of a and b, capped for long
// inputs so that hostile input stays cheap.
func editDistance(a, b string) int {
	if len(a) > 128 || len(b) > 128 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// keyNames returns all keys, sorted.
func (t *keyTable) keyNames() []string {
	out := make([]string, 0, len(t.leaves))
	for _, l := range t.leaves {
		out = append(out, l.key)
	}
	sort.Strings(out)
	return out
}

// envNames returns all environment variable names, sorted.
func (t *keyTable) envNames() []string {
	out := make([]string, 0, len(t.leaves)+1)
	for _, l := range t.leaves {
		out = append(out, l.env)
	}
	out = append(out, envConfigFile)
	sort.Strings(out)
	return out
}
