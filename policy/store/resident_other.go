//go:build !linux

package store

import bolt "go.etcd.io/bbolt"

func dropResident(*bolt.Tx) {}
