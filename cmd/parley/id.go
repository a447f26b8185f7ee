package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// idCmd is a parsed `parley id` command line.
type idCmd struct {
	settings
	json bool
}

func parseID(args []string, stdout io.Writer) (*idCmd, error) {
	c := &idCmd{}
	fs := newCommandFlags("id", cmdID, &c.settings)
	fs.BoolVar(&c.json, "json", false, "print as one JSON object")
	if err := fs.parse(args, stdout); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *idCmd) run(_ context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	logger := newLogger(stderr, c.logLevel)
	if err := c.resolveDataDir(cmdID); err != nil {
		return err
	}
	id, err := loadIdentity(c.dataDir, c.passphrases(stdin, stderr, logger), logger)
	if err != nil {
		return err
	}
	warnDataDirMode(logger, c.dataDir)
	if c.json {
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
