//go:build race

package phone

// raceEnabled: the race detector slows the differential test about 30
// times; under it the test compares a fixed sample of its cases.
const raceEnabled = true
