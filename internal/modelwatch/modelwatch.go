// Package modelwatch owns live model reloads: it watches a model file for
// content changes (and reloads on demand, e.g. on SIGHUP), validates the new
// model with package scorer, and hands over only a valid one. A bad file
// keeps the old model and is logged with every error and its line.
package modelwatch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/scorer"
)

// Config configures a watcher.
type Config struct {
	Path       string                // the model file
	Interval   time.Duration         // how often the file is checked; default 5s
	Reload     <-chan os.Signal      // a reload on every receive, changed or not; may be nil
	OnLoad     func(m *scorer.Model) // receives each new valid model
	Current    *scorer.Model         // the model in use at start
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// Watcher reloads a model file.
type Watcher struct {
	cfg     Config
	last    [32]byte // hash of the content last tried
	reloads *prometheus.CounterVec
}

// New validates cfg and registers the metrics.
func New(cfg Config) (*Watcher, error) {
	switch {
	case cfg.Path == "":
		return nil, errors.New("cannot watch the model: no Path")
	case cfg.OnLoad == nil || cfg.Current == nil || cfg.Logger == nil || cfg.Registerer == nil:
		return nil, errors.New("cannot watch the model: OnLoad, Current, Logger and Registerer are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	w := &Watcher{cfg: cfg,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthscore_model_reloads_total",
			Help: "Model reload attempts, by result: ok, or invalid (the old model stays).",
		}, []string{"result"}),
	}
	if err := cfg.Registerer.Register(w.reloads); err != nil {
		return nil, fmt.Errorf("cannot register model metrics: %w", err)
	}
	w.reloads.WithLabelValues("ok")
	w.reloads.WithLabelValues("invalid")
	if data, err := os.ReadFile(cfg.Path); err == nil {
		w.last = sha256.Sum256(data)
	}
	return w, nil
}

// Run checks the file every Interval and reloads on every Reload signal,
// until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.check(false)
		case <-w.cfg.Reload:
			w.cfg.Logger.Info("model reload requested", zap.String("path", w.cfg.Path))
			w.check(true)
		}
	}
}

// check reloads the file if its content changed, or always when forced.
func (w *Watcher) check(force bool) {
	data, err := os.ReadFile(w.cfg.Path)
	if err != nil {
		if force {
			w.reloads.WithLabelValues("invalid").Inc()
			w.cfg.Logger.Error("cannot read the model file; keeping the current model", zap.Error(err))
		}
		return // a file being replaced: the next check sees the new one
	}
	sum := sha256.Sum256(data)
	if !force && bytes.Equal(sum[:], w.last[:]) {
		return
	}
	w.last = sum
	m, err := scorer.ParseModel(w.cfg.Path, data)
	if err != nil {
		w.reloads.WithLabelValues("invalid").Inc()
		w.cfg.Logger.Error("the changed model is invalid; keeping the current model (check it with 'healthscore model check')",
			zap.String("path", w.cfg.Path), zap.String("errors", err.Error()),
			zap.String("name", w.cfg.Current.Name), zap.String("version", w.cfg.Current.Version))
		return
	}
	w.reloads.WithLabelValues("ok").Inc()
	w.cfg.Logger.Info("model reloaded", zap.String("name", m.Name), zap.String("version", m.Version),
		zap.String("previous_version", w.cfg.Current.Version))
	w.cfg.Current = m
	w.cfg.OnLoad(m)
}
