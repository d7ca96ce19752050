package main

import (
	"fmt"
	"io"
	"os"
)

// status is the live status line: on a terminal it redraws in place (\r
// and erase-line), elsewhere (a pipe, a CI log) it writes one plain line
// per update.
type status struct {
	w     io.Writer
	tty   bool
	drawn bool
}

func newStatus(w io.Writer) *status {
	return &status{w: w, tty: isTerminal(w)}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (s *status) update(line string) {
	if s.tty {
		fmt.Fprintf(s.w, "\r\x1b[K%s", line)
		s.drawn = true
		return
	}
	fmt.Fprintln(s.w, line)
}

// done ends the redrawn line so that what follows starts on its own.
func (s *status) done() {
	if s.tty && s.drawn {
		fmt.Fprintln(s.w)
		s.drawn = false
	}
}
