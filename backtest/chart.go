package backtest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteSVG draws the report as a self-contained SVG: on the left the ROC
// curves of the model, the baseline (and the oracle, with one) over the
// diagonal of a random ranking; on the right the churn rate per band of
// the model and of the baseline (with the model's band sizes).
func (r *Report) WriteSVG(w io.Writer) error {
	const (
		width, height = 920, 476
		rocX, rocY    = 70, 76 // top-left of the ROC plot
		rocS          = 320    // its side
		barX, barY    = 540, 76
		barW, barH    = 340, 320
	)
	var b bytes.Buffer
	esc := func(s string) string {
		var e strings.Builder
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", rocX, esc(fmt.Sprintf("Backtest of %s at %s, horizon %s", r.Model, r.At, r.Horizon)))
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#555">%s</text>`+"\n", rocX, esc(fmt.Sprintf("%d customers, %d churned (%s): %s", r.Customers, r.Churned, pct(r.ChurnRate), r.ChurnRule)))

	// ROC panel.
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", rocX, rocY, rocS, rocS)
	for k := 0; k <= 4; k++ {
		v := float64(k) / 4
		x, y := rocX+int(v*rocS), rocY+rocS-int(v*rocS)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%.2g</text>`+"\n", x, rocY+rocS+16, v)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%.2g</text>`+"\n", rocX-6, y+4, v)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">false positive rate (stayed, flagged)</text>`+"\n", rocX+rocS/2, rocY+rocS+34)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" transform="rotate(-90 %d %d)">true positive rate (churned, flagged)</text>`+"\n", rocX-40, rocY+rocS/2, rocX-40, rocY+rocS/2)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#bbb" stroke-dasharray="4 4"/>`+"\n", rocX, rocY+rocS, rocX+rocS, rocY)
	curve := func(pts []Point, color, label string, auc Metric, row int) {
		if len(pts) == 0 {
			return
		}
		// Points less than a pixel from the last one drawn add nothing
		// visible: skip them (the curve is monotone), keep the last.
		var p strings.Builder
		px, py := math.Inf(-1), math.Inf(-1)
		for i, pt := range pts {
			x, y := rocX+pt.FPR*rocS, rocY+rocS-pt.TPR*rocS
			if i > 0 && i < len(pts)-1 && math.Abs(x-px) < 1 && math.Abs(y-py) < 1 {
				continue
			}
			if i > 0 {
				p.WriteByte(' ')
			}
			fmt.Fprintf(&p, "%.1f,%.1f", x, y)
			px, py = x, y
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", p.String(), color)
		ly := rocY + rocS - 70 + 18*row
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", rocX+150, ly-4, rocX+170, ly-4, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", rocX+176, ly, esc(fmt.Sprintf("%s (AUC %s)", label, f3(auc))))
	}
	curve(r.ROC, "#1f77b4", "model", r.AUC, 0)
	curve(r.BaselineROC, "#ff7f0e", "RFM rank-sum", r.BaselineAUC, 1)
	if r.OracleAUC != nil {
		curve(r.OracleROC, "#2ca02c", "oracle", *r.OracleAUC, 2)
	}

	// Churn rate per band.
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">churn rate per band</text>`+"\n", barX, barY-6)
	top := 0.0
	for k := range r.Bands {
		for _, v := range []Metric{r.Bands[k].ChurnRate, r.BaselineBands[k].ChurnRate} {
			if !math.IsNaN(float64(v)) {
				top = max(top, float64(v))
			}
		}
	}
	top = math.Max(0.1, math.Ceil(top*10)/10)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`+"\n", barX, barY+barH, barX+barW, barY+barH)
	for k := 0; k <= 4; k++ {
		v := top * float64(k) / 4
		y := barY + barH - int(float64(barH)*v/top)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#eee"/>`+"\n", barX, y, barX+barW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%.0f%%</text>`+"\n", barX-6, y+4, 100*v)
	}
	group := barW / len(r.Bands)
	colors := map[string]string{"red": "#d62728", "yellow": "#e0b000", "green": "#2ca02c"}
	for k := range r.Bands {
		gx := barX + k*group
		for s, f := range []BandFigures{r.Bands[k], r.BaselineBands[k]} {
			v := float64(f.ChurnRate)
			if math.IsNaN(v) {
				v = 0
			}
			h := int(float64(barH) * v / top)
			x := gx + 14 + s*(group-28)/2
			opacity := "1"
			if s == 1 {
				opacity = "0.45"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" fill-opacity="%s" stroke="#333"/>`+"\n", x, barY+barH-h, (group-28)/2-4, h, colors[f.Band], opacity)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="11">%s</text>`+"\n", x+((group-28)/2-4)/2, barY+barH-h-4, esc(pct(f.ChurnRate)))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", gx+group/2, barY+barH+16, esc(fmt.Sprintf("%s (%d)", r.Bands[k].Band, r.Bands[k].Customers)))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">solid: model; pale: RFM rank-sum with the same band sizes</text>`+"\n", barX, barY+barH+34)
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}
