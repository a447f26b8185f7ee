package main

import (
	"encoding/json"
	"fmt"
	"io"
)

func runID(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var c common
	var asJSON bool
	fs := newFlagSet("id")
	c.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print as one JSON object")
	if err := fs.parse(args, stdout); err != nil {
		return err
	}
	level, err := parseLevel(c.logLevel)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, level)
	if err := c.resolveDataDir(); err != nil {
		return err
	}
	id, err := loadIdentity(c.dataDir, c.passphrases(stdin, stderr, logger), logger)
	if err != nil {
		return err
	}
	if asJSON {
		b, err := json.Marshal(map[string]string{
			"peer_id":     id.ID.String(),
			"fingerprint": id.Fingerprint(),
			"data_dir":    c.dataDir,
		})
		if err != nil {
			return fmt.Errorf("encode id: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	_, err = fmt.Fprintf(stdout, "peer id:     %s\nfingerprint: %s\ndata dir:    %s\n", id.ID, id.Fingerprint(), c.dataDir)
	return err
}
