package store

import (
	"golang.org/x/sys/unix"

	bolt "go.etcd.io/bbolt"
)

// dropResident takes the pages of the bolt file out of this process's
// resident set (madvise MADV_DONTNEED on bbolt's read-only shared mapping):
// they stay in the page cache and come back on the next access, as a minor
// fault. Called inside a read transaction, which holds bbolt's mmap lock,
// so the mapping cannot move meanwhile.
func dropResident(tx *bolt.Tx) {
	info := tx.DB().Info()
	if info == nil || info.Data == 0 || tx.Size() <= 0 {
		return
	}
	unix.Syscall(unix.SYS_MADVISE, info.Data, uintptr(tx.Size()), unix.MADV_DONTNEED)
}
