package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestTheEnvironmentOverridesTheFileForEverySection(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "breachcast.yaml")
	os.WriteFile(file, []byte("db: from-file.db\nhttp:\n  addr: 127.0.0.1:9000\nsendgrid:\n  batch_size: 500\nworker:\n  lease: 45s\n"), 0o600)
	secret := filepath.Join(dir, "sg-key")
	os.WriteFile(secret, []byte("SG.from-a-file\n"), 0o600)
	c, err := loadConfig(file, envOf(map[string]string{
		"BREACHCAST_DB":                    "from-env.db",
		"BREACHCAST_SENDGRID_API_KEY_FILE": secret,
		"BREACHCAST_STATUS_COMPONENTS":     "Website, API ,",
		"BREACHCAST_X_POLL_MIN":            "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DB != "from-env.db" || c.HTTP.Addr != "127.0.0.1:9000" || c.SendGrid.BatchSize != 500 ||
		time.Duration(c.Worker.Lease) != 45*time.Second || time.Duration(c.X.PollMin) != 5*time.Second {
		t.Fatalf("%+v", c)
	}
	if c.SendGrid.APIKey != "SG.from-a-file" {
		t.Fatalf("secret from file: %q", string(c.SendGrid.APIKey))
	}
	if strings.Join(c.Status.Components, "|") != "Website|API" {
		t.Fatalf("components %q", c.Status.Components)
	}
	if s := c.SendGrid.APIKey.String(); s != "[redacted]" {
		t.Fatalf("a secret prints as %q", s)
	}
}

func TestBadSettingsNameTheSettingAndTheProblem(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		file string
		env  map[string]string
		want string
	}{
		"typo in the file":    {"sendgrid:\n  batchsize: 10\n", nil, "batchsize"},
		"bad duration":        {"", map[string]string{"BREACHCAST_WORKER_LEASE": "soon"}, "BREACHCAST_WORKER_LEASE"},
		"bad number":          {"", map[string]string{"BREACHCAST_SENDGRID_CONCURRENCY": "many"}, "BREACHCAST_SENDGRID_CONCURRENCY"},
		"batch too large":     {"", map[string]string{"BREACHCAST_SENDGRID_BATCH_SIZE": "5000"}, "sendgrid.batch_size"},
		"not a URL":           {"", map[string]string{"BREACHCAST_X_BASE_URL": "api.x.com"}, "x.base_url"},
		"unknown mode":        {"", map[string]string{"BREACHCAST_FACEBOOK_MODE": "story"}, "facebook.mode"},
		"missing secret file": {"", map[string]string{"BREACHCAST_X_ACCESS_SECRET_FILE": filepath.Join(dir, "nope")}, "BREACHCAST_X_ACCESS_SECRET_FILE"},
	} {
		t.Run(name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = filepath.Join(dir, "c.yaml")
				os.WriteFile(path, []byte(tc.file), 0o600)
			}
			_, err := loadConfig(path, envOf(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
