//go:build race

package sa

// raceOn: the race detector makes the corpus tests tens of times slower;
// they run on a smaller sample.
const raceOn = true
