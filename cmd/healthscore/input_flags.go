package main

// The flags of the input formats: --input-format and --input-config (see
// package ingest and docs/events.md#input-formats).

import (
	"fmt"
	"os"

	"github.com/healthscore/healthscore/ingest"
)

type inputFlags struct {
	format, config string
	env            *envFlags
}

func (f *inputFlags) register(e *envFlags) {
	f.env = e
	e.str(&f.format, "input-format", "HEALTHSCORE_INPUT_FORMAT", string(ingest.FormatAuto), "format of the input records: auto (detected per record), native, cloudevents or segment; applies to topics that --input-config does not list, and wins over that file's own format")
	e.str(&f.config, "input-config", "HEALTHSCORE_INPUT_CONFIG", "", "YAML file of input formats per topic and field mappings of CloudEvents and Segment calls (docs/events.md); empty: the defaults")
}

// decoder reads and checks the input configuration against the input
// topics and returns its decoder.
func (f *inputFlags) decoder(topics []string) (*ingest.Decoder, error) {
	var cfg ingest.Config
	if f.config != "" {
		data, err := os.ReadFile(f.config)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read the input configuration: %w", f.env.source("input-config"), err)
		}
		if cfg, err = ingest.ParseConfig(f.config, data); err != nil {
			return nil, err
		}
		if err := cfg.CheckTopics(topics); err != nil {
			return nil, fmt.Errorf("%s: %w", f.config, err)
		}
	}
	if f.config == "" || f.env.isSet("input-format") {
		format, err := ingest.ParseFormat(f.format)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.env.source("input-format"), err)
		}
		cfg.Default.Format = format
	}
	return ingest.New(cfg)
}
