//go:build !unix

package journal

import (
	"errors"
	"os"
)

// errNoMapping makes Open fail where files cannot be mapped with the
// syscall package: the proxy then runs without a journal.
var errNoMapping = errors.New("the capture journal needs a unix system")

func mapFile(*os.File, int) ([]byte, error) { return nil, errNoMapping }

func unmap([]byte) error { return errNoMapping }
