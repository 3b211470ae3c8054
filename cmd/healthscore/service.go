package main

import (
	"errors"
	"io"
)

func runService(args []string, stderr io.Writer) error {
	return errors.New("the streaming service is not wired yet")
}
