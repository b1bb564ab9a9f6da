package eval

import "testing"

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
