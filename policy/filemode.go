package policy

import (
	"fmt"
	"io/fs"
	"strconv"
)

// ParseFileMode reads an octal permission such as "0660".
func ParseFileMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission such as 0660", s)
	}
	return fs.FileMode(v), nil
}
