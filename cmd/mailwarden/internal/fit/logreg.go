// Package fit fits the weights that combine the spam check's signals, for
// `mailwarden learn --fit`: L2-regularised logistic regression (Newton's
// method, deterministic, standard library only) on the signals each
// message fired and the log-odds of its Bayes probability, with the Bayes
// probability of every message computed by a classifier trained on the
// other folds, so that the combination learns how far Bayes is to be
// trusted on mail it has not seen. It reports k-fold cross-validated
// figures and maps the fitted log-odds onto the [score] threshold scale
// (see spam.FitInfo and Map).
package fit

import (
	"errors"
	"math"
	"sort"
)

// ErrSingular means Newton's method met a matrix it could not factor
// (it cannot with λ > 0; kept for λ = 0).
var ErrSingular = errors.New("fit: singular Hessian")

// Row is one training example: the indices of the binary features that
// are 1, the continuous features (index → value), and the label.
type Row struct {
	On   []int
	Cont map[int]float64
	Spam bool
}

// LogReg is a fitted model: log-odds = Bias + Σ W[i]·x[i].
type LogReg struct {
	Bias float64
	W    []float64
}

// Z is the model's log-odds for r.
func (m *LogReg) Z(r Row) float64 {
	z := m.Bias
	for _, i := range r.On {
		z += m.W[i]
	}
	for i, v := range r.Cont {
		z += m.W[i] * v
	}
	return z
}

// Train fits an L2-regularised logistic regression on rows with d
// features: it minimises
//
//	Σ c_r · log(1 + exp(−y_r·z_r)) + λ/2 · ‖W‖²
//
// (the bias is not penalised), where the class weights c make ham and spam
// weigh the same in total (each class sums to n/2), so the fitted odds are
// a likelihood ratio that does not depend on the corpus' spam share.
// Newton's method with a dense Hessian (the rows are sparse, so building
// it costs Σ nnz²) and a Cholesky solve; it stops when the step is below
// 1e-6 or after 50 iterations. The result is deterministic.
func Train(rows []Row, d int, lambda float64) (*LogReg, error) {
	return TrainPrior(rows, d, Prior{Lambda: lambda})
}

// Prior is the penalty of TrainPrior: feature i is pulled towards Mu[i]
// (0 when Mu is short) with strength Lambdas[i] (Lambda when short).
type Prior struct {
	Lambda  float64
	Lambdas []float64
	Mu      []float64
}

func (p Prior) at(i int) (lambda, mu float64) {
	lambda = p.Lambda
	if i < len(p.Lambdas) {
		lambda = p.Lambdas[i]
	}
	if i < len(p.Mu) {
		mu = p.Mu[i]
	}
	return lambda, mu
}

// TrainPrior is Train with a Gaussian prior per feature: it minimises
//
//	Σ c_r · log(1 + exp(−y_r·z_r)) + Σ λ_i/2 · (W_i − μ_i)²
//
// starting from W = μ.
func TrainPrior(rows []Row, d int, pr Prior) (*LogReg, error) {
	var nh, ns float64
	for _, r := range rows {
		if r.Spam {
			ns++
		} else {
			nh++
		}
	}
	n := nh + ns
	cw := [2]float64{n / 2 / max(nh, 1), n / 2 / max(ns, 1)}
	m := &LogReg{W: make([]float64, d)}
	for i := range m.W {
		_, m.W[i] = pr.at(i)
	}
	D := d + 1 // index d is the bias
	H := make([]float64, D*D)
	g := make([]float64, D)
	idx := make([]int, 0, 64)
	val := make([]float64, 0, 64)
	for it := 0; it < 50; it++ {
		clear(H)
		clear(g)
		for _, r := range rows {
			idx, val = features(r, d, idx[:0], val[:0])
			z := m.Z(r)
			p := sigmoid(z)
			y := 0.0
			c := cw[0]
			if r.Spam {
				y, c = 1, cw[1]
			}
			gr := c * (p - y)
			w := c * p * (1 - p)
			for a, i := range idx {
				g[i] += gr * val[a]
				for b, j := range idx {
					H[i*D+j] += w * val[a] * val[b]
				}
			}
		}
		for i := 0; i < d; i++ {
			lambda, mu := pr.at(i)
			g[i] += lambda * (m.W[i] - mu)
			H[i*D+i] += lambda
		}
		H[d*D+d] += 1e-9 // a corpus of one class
		step, err := cholSolve(H, g, D)
		if err != nil {
			return nil, err
		}
		// Damped Newton: halve the step until the objective does not
		// grow (a plain Newton step can overshoot from a start far from
		// the optimum, e.g. a weight held by a strong prior).
		before := objective(m, rows, cw, pr)
		oldW, oldB := append([]float64(nil), m.W...), m.Bias
		var norm float64
		for t, f := 0, 1.0; t < 30; t, f = t+1, f/2 {
			norm = 0
			for i := 0; i < d; i++ {
				m.W[i] = oldW[i] - f*step[i]
				norm = max(norm, math.Abs(f*step[i]))
			}
			m.Bias = oldB - f*step[d]
			norm = max(norm, math.Abs(f*step[d]))
			if objective(m, rows, cw, pr) <= before+1e-12 {
				break
			}
		}
		if norm < 1e-6 {
			break
		}
	}
	return m, nil
}

// objective is what TrainPrior minimises.
func objective(m *LogReg, rows []Row, cw [2]float64, pr Prior) float64 {
	var f float64
	for _, r := range rows {
		z, c := m.Z(r), cw[0]
		if r.Spam {
			c = cw[1]
		} else {
			z = -z
		}
		// log(1 + exp(−z)), stable for large |z|
		if z > 0 {
			f += c * math.Log1p(math.Exp(-z))
		} else {
			f += c * (-z + math.Log1p(math.Exp(z)))
		}
	}
	for i, w := range m.W {
		lambda, mu := pr.at(i)
		f += lambda / 2 * (w - mu) * (w - mu)
	}
	return f
}

// features lists the non-zero features of r (and the bias, index d) in a
// fixed order.
func features(r Row, d int, idx []int, val []float64) ([]int, []float64) {
	for _, i := range r.On {
		idx = append(idx, i)
		val = append(val, 1)
	}
	keys := make([]int, 0, len(r.Cont))
	for i := range r.Cont {
		keys = append(keys, i)
	}
	sort.Ints(keys)
	for _, i := range keys {
		idx = append(idx, i)
		val = append(val, r.Cont[i])
	}
	return append(idx, d), append(val, 1)
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// cholSolve solves A x = b for a symmetric positive definite A (n×n, row
// major); A is overwritten.
func cholSolve(A, b []float64, n int) ([]float64, error) {
	for j := 0; j < n; j++ {
		s := A[j*n+j]
		for k := 0; k < j; k++ {
			s -= A[j*n+k] * A[j*n+k]
		}
		if s <= 0 || math.IsNaN(s) {
			return nil, ErrSingular
		}
		s = math.Sqrt(s)
		A[j*n+j] = s
		for i := j + 1; i < n; i++ {
			t := A[i*n+j]
			for k := 0; k < j; k++ {
				t -= A[i*n+k] * A[j*n+k]
			}
			A[i*n+j] = t / s
		}
	}
	x := make([]float64, n)
	for i := 0; i < n; i++ { // L y = b
		t := b[i]
		for k := 0; k < i; k++ {
			t -= A[i*n+k] * x[k]
		}
		x[i] = t / A[i*n+i]
	}
	for i := n - 1; i >= 0; i-- { // Lᵀ x = y
		t := x[i]
		for k := i + 1; k < n; k++ {
			t -= A[k*n+i] * x[k]
		}
		x[i] = t / A[i*n+i]
	}
	return x, nil
}
