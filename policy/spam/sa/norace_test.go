//go:build !race

package sa

const raceOn = false
