package testclock_test

import (
	"testing"
	"time"

	"github.com/breachcast/breachcast/internal/testclock"
)

func TestTheClockMovesOnlyWhenTold(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	c := testclock.New(t0)
	first := c.Now()
	time.Sleep(time.Millisecond) // real time passes; the clock must not
	if !first.Equal(t0) || !c.Now().Equal(t0) {
		t.Fatal("the clock moved by itself")
	}
	c.Advance(time.Hour)
	if got := c.Now(); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after Advance: %v", got)
	}
	c.Set(t0)
	if !c.Now().Equal(t0) {
		t.Fatal("Set did not set")
	}
}
