package fit

import (
	"math"
	"slices"
)

// logistic is an L2-regularised logistic regression of y (1 = stayed,
// 0 = churned) on standardised columns: P(stay) = σ(b0 + Σ β_j·(x_j − μ_j)/σ_j),
// minimising −loglik + λ/2·Σ β_j² (the intercept is not penalised).
type logistic struct {
	mu, sd []float64
	beta   []float64
	b0     float64
}

// raw returns the coefficients on the unstandardised columns (the intercept
// is dropped: it does not change a ranking).
func (l *logistic) raw() []float64 {
	out := make([]float64, len(l.beta))
	for j, b := range l.beta {
		if l.sd[j] > 0 {
			out[j] = b / l.sd[j]
		}
	}
	return out
}

// predict is the linear predictor per row of cols (column-major).
func (l *logistic) predict(cols [][]float64) []float64 {
	n := len(cols[0])
	eta := make([]float64, n)
	for i := range eta {
		eta[i] = l.b0
	}
	for j, c := range cols {
		if l.sd[j] == 0 {
			continue
		}
		b := l.beta[j] / l.sd[j]
		for i, v := range c {
			eta[i] += b * (v - l.mu[j])
		}
	}
	return eta
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// fitLogistic fits by Newton's method. cols are the features,
// column-major; y is 1 for customers who stayed.
func fitLogistic(cols [][]float64, y []float64, lambda float64) *logistic {
	d, n := len(cols), len(y)
	l := &logistic{mu: make([]float64, d), sd: make([]float64, d), beta: make([]float64, d)}
	z := make([][]float64, d)
	for j, c := range cols {
		var s, ss float64
		for _, v := range c {
			s += v
		}
		l.mu[j] = s / float64(n)
		for _, v := range c {
			ss += (v - l.mu[j]) * (v - l.mu[j])
		}
		l.sd[j] = math.Sqrt(ss / float64(n))
		if l.sd[j] < 1e-12 {
			l.sd[j] = 0
		}
		z[j] = make([]float64, n)
		if l.sd[j] > 0 {
			for i, v := range c {
				z[j][i] = (v - l.mu[j]) / l.sd[j]
			}
		}
	}
	var ybar float64
	for _, v := range y {
		ybar += v
	}
	ybar /= float64(n)
	if ybar > 0 && ybar < 1 {
		l.b0 = math.Log(ybar / (1 - ybar))
	}
	p := make([]float64, n)
	k := d + 1 // parameters: b0, then β
	for iter := 0; iter < 50; iter++ {
		for i := range p {
			eta := l.b0
			for j := range z {
				eta += l.beta[j] * z[j][i]
			}
			p[i] = sigmoid(eta)
		}
		g := make([]float64, k)
		H := make([][]float64, k)
		for a := range H {
			H[a] = make([]float64, k)
		}
		col := func(a, i int) float64 {
			if a == 0 {
				return 1
			}
			return z[a-1][i]
		}
		for i := range p {
			r, w := y[i]-p[i], p[i]*(1-p[i])
			for a := 0; a < k; a++ {
				xa := col(a, i)
				g[a] += r * xa
				for b := 0; b <= a; b++ {
					H[a][b] += w * xa * col(b, i)
				}
			}
		}
		for a := 1; a < k; a++ {
			g[a] -= lambda * l.beta[a-1]
			H[a][a] += lambda
			if l.sd[a-1] == 0 {
				H[a][a] += 1 // keeps the system regular; its β stays 0
			}
		}
		for a := 0; a < k; a++ {
			for b := a + 1; b < k; b++ {
				H[a][b] = H[b][a]
			}
		}
		H[0][0] += 1e-9
		step := solve(H, g)
		if step == nil {
			break
		}
		// Damped Newton: halve the step until the penalised loss does
		// not rise (a full step can overshoot on nearly collinear
		// features).
		cur := l.loss(z, y, lambda)
		b0, beta := l.b0, slices.Clone(l.beta)
		t := 1.0
		for range 40 {
			l.b0 = b0 + t*step[0]
			for j := range l.beta {
				l.beta[j] = beta[j] + t*step[j+1]
			}
			if next := l.loss(z, y, lambda); next <= cur {
				break
			}
			t /= 2
		}
		maxStep := math.Abs(t * step[0])
		for j := range l.beta {
			maxStep = math.Max(maxStep, math.Abs(t*step[j+1]))
		}
		if maxStep < 1e-8 {
			break
		}
	}
	return l
}

// loss is the penalised negative log-likelihood on standardised columns z.
func (l *logistic) loss(z [][]float64, y []float64, lambda float64) float64 {
	var sum float64
	for i := range y {
		eta := l.b0
		for j := range z {
			eta += l.beta[j] * z[j][i]
		}
		// log(1 + e^η) − y·η, computed without overflow.
		sp := math.Log1p(math.Exp(-math.Abs(eta))) + math.Max(eta, 0)
		sum += sp - y[i]*eta
	}
	for _, b := range l.beta {
		sum += lambda / 2 * b * b
	}
	if math.IsNaN(sum) {
		return math.Inf(1)
	}
	return sum
}

// scoreTest is the score statistic U²/I of adding column x (unstandardised)
// to a fit whose predicted probabilities are p: how much the log-likelihood
// would rise, to first order, by adding it.
func scoreTest(x, y, p []float64) float64 {
	n := float64(len(x))
	var mu float64
	for _, v := range x {
		mu += v
	}
	mu /= n
	var u, info float64
	for i, v := range x {
		c := v - mu
		u += (y[i] - p[i]) * c
		info += p[i] * (1 - p[i]) * c * c
	}
	if info < 1e-12 {
		return 0
	}
	return u * u / info
}

// solve solves A·x = b by Gaussian elimination with partial pivoting
// (A is small and symmetric positive definite); nil when singular.
func solve(A [][]float64, b []float64) []float64 {
	n := len(b)
	m := make([][]float64, n)
	for i := range m {
		m[i] = append(append([]float64(nil), A[i]...), b[i])
	}
	for c := 0; c < n; c++ {
		piv := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[piv][c]) {
				piv = r
			}
		}
		if math.Abs(m[piv][c]) < 1e-14 {
			return nil
		}
		m[c], m[piv] = m[piv], m[c]
		for r := c + 1; r < n; r++ {
			f := m[r][c] / m[c][c]
			for k := c; k <= n; k++ {
				m[r][k] -= f * m[c][k]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := m[r][n]
		for k := r + 1; k < n; k++ {
			s -= m[r][k] * x[k]
		}
		x[r] = s / m[r][r]
	}
	return x
}
