package eval

import (
	"fmt"
	"testing"
	"time"
)

func TestAUC(t *testing.T) {
	if a := AUC([]float64{0, 1, 2}, []float64{3, 4}); a != 1 {
		t.Errorf("separated: %v", a)
	}
	if a := AUC([]float64{1, 1}, []float64{1, 1}); a != 0.5 {
		t.Errorf("ties: %v", a)
	}
	if a := AUC([]float64{5}, []float64{1}); a != 0 {
		t.Errorf("reversed: %v", a)
	}
}

func TestAssignFolds(t *testing.T) {
	var msgs []*Msg
	for i := 0; i < 100; i++ {
		msgs = append(msgs, &Msg{Path: "h" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	for i := 0; i < 30; i++ {
		msgs = append(msgs, &Msg{Path: "s" + string(rune('a'+i)), Spam: true})
	}
	AssignFolds(msgs, 5, 0)
	per := map[int][2]int{}
	for _, m := range msgs {
		c := per[m.Fold]
		if m.Spam {
			c[1]++
		} else {
			c[0]++
		}
		per[m.Fold] = c
	}
	for f := 0; f < 5; f++ {
		if per[f] != [2]int{20, 6} {
			t.Errorf("fold %d: %v ham/spam, want stratified 20/6", f, per[f])
		}
	}
	first := msgs[0].Fold
	AssignFolds(msgs, 5, 13)
	if msgs[0].Fold != first {
		t.Error("folds not deterministic")
	}
	n := 0
	for _, m := range msgs {
		if m.Fold == 0 && m.Test {
			n++
		}
	}
	if n != 13 {
		t.Errorf("test sample of fold 0: %d, want 13", n)
	}
}

func TestSplitByDateAndSample(t *testing.T) {
	var msgs []*Msg
	for i := range 40 {
		msgs = append(msgs, &Msg{Path: fmt.Sprintf("m%02d", i), Spam: i%2 == 1, Raw: []byte{byte(i)}})
	}
	cutoff := time.Date(2002, 9, 1, 0, 0, 0, 0, time.UTC)
	// Message i arrives i days after Aug 12; the last one has no date.
	received := func(raw []byte) (time.Time, bool) {
		if raw[0] == 39 {
			return time.Time{}, false
		}
		return time.Date(2002, 8, 12+int(raw[0]), 0, 0, 0, 0, time.UTC), true
	}
	SplitByDate(msgs, cutoff, received)
	for i, m := range msgs {
		want := 1
		if i >= 20 && i != 39 {
			want = 0
		}
		if m.Fold != want {
			t.Errorf("message %d: fold %d, want %d", i, m.Fold, want)
		}
	}
	SampleTest(msgs, 0, 0)
	n := 0
	for _, m := range msgs {
		if m.Test {
			n++
			if m.Fold != 0 {
				t.Errorf("%s: training message in the test set", m.Path)
			}
		}
	}
	if n != 19 {
		t.Errorf("test set %d, want 19", n)
	}
	SampleTest(msgs, 0, 3)
	var h, s int
	for _, m := range msgs {
		if m.Test && m.Spam {
			s++
		} else if m.Test {
			h++
		}
	}
	if h != 3 || s != 3 {
		t.Errorf("sample: %d ham, %d spam", h, s)
	}
}
