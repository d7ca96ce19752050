package sfu

import "strings"

// Secrets in Pion's log records. Pion's ICE agent logs the remote ICE
// password at debug ("Started agent: ... remotePwd: %q"); with it and the
// ufrag in the SDP anyone reading the logs could answer the viewer's
// checks. redactArgs replaces every argument whose label in the format
// (the text before its verb, since the previous verb) names a secret.

// secretLabels are the words that mark a value as a secret in a format.
var secretLabels = []string{"pwd", "password", "passwd", "secret", "srtp key", "master key", "masterkey", "keyingmaterial", "keying material", "token"}

const redacted = "[redacted]"

// redactArgs returns args with each secret replaced by "[redacted]"; args
// itself when there is none (no allocation).
func redactArgs(format string, args []any) []any {
	out := args
	arg := 0
	label := 0 // start of the current verb's label
	for i := 0; i < len(format) && arg < len(args); i++ {
		if format[i] != '%' {
			continue
		}
		if i+1 < len(format) && format[i+1] == '%' {
			i++
			continue
		}
		if isSecretLabel(format[label:i]) {
			if &out[0] == &args[0] {
				out = append([]any(nil), args...)
			}
			out[arg] = redacted
		}
		arg++
		// Skip the verb's flags, width and precision to its letter.
		for i++; i < len(format) && strings.IndexByte("+-# 0123456789.*[]", format[i]) >= 0; i++ {
		}
		label = i + 1
	}
	return out
}

func isSecretLabel(s string) bool {
	if len(s) > 48 {
		s = s[len(s)-48:] // the words just before the verb
	}
	s = strings.ToLower(s)
	for _, w := range secretLabels {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
