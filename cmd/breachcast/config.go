package main

import (
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Secret is a setting that must never be printed or logged: API keys, tokens,
// app secrets. Its String form is "[redacted]".
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalYAML hides the value when a config is printed.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Duration is a time.Duration written as "30s", "2m".
type Duration time.Duration

// UnmarshalYAML reads "30s" style durations.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. 30s or 2m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes durations as "30s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Config is every setting. Each can be set in the config file (YAML, the
// section and key names below) or by an environment variable
// BREACHCAST_<SECTION>_<KEY> (BREACHCAST_<KEY> for top-level keys), which
// wins. A secret can also be read from a file named by the same variable with
// _FILE appended (BREACHCAST_SENDGRID_API_KEY_FILE), as container secret
// stores provide.
type Config struct {
	DB        string `yaml:"db" doc:"SQLite database file (PostgreSQL comes later)"`
	PublicURL string `yaml:"public_url" doc:"public base URL of the status page, used in every link"`
	Company   string `yaml:"company" doc:"company name shown in notices"`
	LogLevel  string `yaml:"log_level" doc:"debug, info, warn or error"`
	Actor     string `yaml:"actor" doc:"name recorded in the audit log for publishes and pauses (default: the OS user)"`

	HTTP struct {
		Addr string `yaml:"addr" doc:"listen address of breachcast serve"`
	} `yaml:"http"`

	SendGrid struct {
		APIKey        Secret  `yaml:"api_key" doc:"SendGrid API key with Mail Send permission; email is off without it"`
		BaseURL       string  `yaml:"base_url" doc:"SendGrid API base URL"`
		FromEmail     string  `yaml:"from_email" doc:"sender address (a verified SendGrid sender)"`
		FromName      string  `yaml:"from_name" doc:"sender name"`
		InboundDomain string  `yaml:"inbound_domain" doc:"domain of SendGrid Inbound Parse; replies go to reply+TOKEN@ this domain"`
		Sandbox       bool    `yaml:"sandbox" doc:"SendGrid sandbox mode: validate every email, deliver none"`
		Concurrency   int     `yaml:"concurrency" doc:"parallel mail/send requests"`
		Rate          float64 `yaml:"rate" doc:"mail/send requests per second per process (0: unlimited)"`
		BatchSize     int     `yaml:"batch_size" doc:"recipients per request (at most 1000)"`
	} `yaml:"sendgrid"`

	X struct {
		BaseURL           string   `yaml:"base_url" doc:"X API base URL"`
		ConsumerKey       Secret   `yaml:"consumer_key" doc:"app API key (OAuth 1.0a consumer key); X is off without it"`
		ConsumerSecret    Secret   `yaml:"consumer_secret" doc:"app API key secret"`
		AccessToken       Secret   `yaml:"access_token" doc:"the posting account's access token"`
		AccessSecret      Secret   `yaml:"access_secret" doc:"the posting account's access token secret"`
		Username          string   `yaml:"username" doc:"the posting account's @name (optional; read from the API)"`
		UserID            string   `yaml:"user_id" doc:"the posting account's id (optional; read from the API)"`
		ReadBudgetPerHour int      `yaml:"read_budget_per_hour" doc:"posts read per hour when collecting replies (X bills reads)"`
		PollMin           Duration `yaml:"poll_min" doc:"shortest wait between reply polls (after new replies)"`
		PollMax           Duration `yaml:"poll_max" doc:"longest wait between reply polls (the wait doubles while nothing new arrives)"`
		Rate              float64  `yaml:"rate" doc:"posts per second per process (0: unlimited)"`
	} `yaml:"x"`

	Facebook struct {
		BaseURL     string  `yaml:"base_url" doc:"Graph API base URL"`
		AppID       string  `yaml:"app_id" doc:"Meta app id"`
		AppSecret   Secret  `yaml:"app_secret" doc:"Meta app secret (appsecret_proof, webhook signatures)"`
		PageID      string  `yaml:"page_id" doc:"the Facebook Page id"`
		PageToken   Secret  `yaml:"page_token" doc:"a Page access token; Facebook is off without it"`
		VerifyToken Secret  `yaml:"verify_token" doc:"webhook subscription verify token; without it comments are polled instead"`
		Mode        string  `yaml:"mode" doc:"post: later updates are new posts naming the first; comment: comments on it"`
		RetractMode string  `yaml:"retract_mode" doc:"hide or delete, for breachcast retract"`
		Rate        float64 `yaml:"rate" doc:"posts per second per process (0: unlimited)"`
	} `yaml:"facebook"`

	Templates struct {
		Dir string `yaml:"dir" doc:"directory of templates overriding the embedded defaults"`
	} `yaml:"templates"`

	Status struct {
		Title          string   `yaml:"title" doc:"status page title (default: COMPANY status)"`
		Components     []string `yaml:"components" doc:"components listed on the page and in the API (comma-separated in the environment)"`
		MaxConnections int      `yaml:"max_connections" doc:"live viewers the server holds at most"`
		MaxPerAddress  int      `yaml:"max_per_address" doc:"live viewers per client address at most"`
		AllowedOrigins []string `yaml:"allowed_origins" doc:"extra origins allowed to open the live socket"`
		SecretKey      Secret   `yaml:"secret_key" doc:"key signing subscription tokens (32+ random bytes; generated per run when empty)"`
		TimeZone       string   `yaml:"time_zone" doc:"IANA time zone for times on the page"`
	} `yaml:"status"`

	Worker struct {
		Lease       Duration `yaml:"lease" doc:"how long claimed work stays a worker's without renewal"`
		MaxAttempts int      `yaml:"max_attempts" doc:"tries before a batch or post is failed and reported"`
	} `yaml:"worker"`
}

// defaults returns a config with every default filled in.
func defaults() *Config {
	c := &Config{DB: "breachcast.db", PublicURL: "http://127.0.0.1:8080", LogLevel: "info"}
	c.HTTP.Addr = "127.0.0.1:8080"
	c.SendGrid.BaseURL = "https://api.sendgrid.com"
	c.SendGrid.Concurrency = 8
	c.SendGrid.BatchSize = 1000
	c.X.BaseURL = "https://api.x.com"
	c.X.ReadBudgetPerHour = 600
	c.X.PollMin = Duration(30 * time.Second)
	c.X.PollMax = Duration(15 * time.Minute)
	c.Facebook.BaseURL = "https://graph.facebook.com"
	c.Facebook.Mode = "post"
	c.Facebook.RetractMode = "hide"
	c.Status.MaxConnections = 20000
	c.Status.MaxPerAddress = 50
	c.Status.TimeZone = "UTC"
	c.Worker.Lease = Duration(30 * time.Second)
	c.Worker.MaxAttempts = 12
	return c
}

// loadConfig reads the defaults, then the config file (when path is not
// empty), then the environment.
func loadConfig(path string, getenv func(string) string) (*Config, error) {
	c := defaults()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && err.Error() != "EOF" {
			return nil, fmt.Errorf("config %s: %v", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o044 != 0 && c.hasSecrets() {
			// Not fatal, but the lesson of 2013 is that tokens leak from where
			// they sit: say so loudly.
			fmt.Fprintf(os.Stderr, "warning: %s holds secrets and is readable by other users (chmod 600 %s)\n", path, path)
		}
	}
	if err := applyEnv(c, getenv); err != nil {
		return nil, err
	}
	return c, c.validate()
}

func (c *Config) hasSecrets() bool {
	return c.SendGrid.APIKey != "" || c.X.ConsumerSecret != "" || c.X.AccessSecret != "" ||
		c.Facebook.AppSecret != "" || c.Facebook.PageToken != ""
}

// setting is one leaf of Config: its dotted key, its environment variable,
// its help and the field itself.
type setting struct {
	key, env, doc string
	field         reflect.Value
}

// settings lists every leaf setting of c in declaration order. Durations
// are leaves even though they are not strings.
func settings(c *Config) []setting {
	var out []setting
	var walk func(v reflect.Value, section, env string)
	walk = func(v reflect.Value, section, env string) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			key := strings.Split(f.Tag.Get("yaml"), ",")[0]
			name := env + "_" + strings.ToUpper(key)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
				walk(v.Field(i), section+key+".", name)
				continue
			}
			out = append(out, setting{key: section + key, env: name, doc: f.Tag.Get("doc"), field: v.Field(i)})
		}
	}
	walk(reflect.ValueOf(c).Elem(), "", "BREACHCAST")
	return out
}

// applyEnv sets every setting from its BREACHCAST_<SECTION>_<KEY> variable
// (a secret also from the file named by ..._FILE).
func applyEnv(c *Config, getenv func(string) string) error {
	for _, st := range settings(c) {
		raw := getenv(st.env)
		if raw == "" && st.field.Type() == reflect.TypeOf(Secret("")) {
			if file := getenv(st.env + "_FILE"); file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("%s_FILE: %w", st.env, err)
				}
				raw = strings.TrimSpace(string(b))
			}
		}
		if raw == "" {
			continue
		}
		if err := setField(st.field, raw); err != nil {
			return fmt.Errorf("%s: %v", st.env, err)
		}
	}
	return nil
}

func setField(fv reflect.Value, raw string) error {
	switch fv.Interface().(type) {
	case Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration (write e.g. 30s)", raw)
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		fv.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		fv.SetInt(int64(n))
	case reflect.Float64:
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", raw)
		}
		fv.SetFloat(n)
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		fv.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported setting type %s", fv.Type())
	}
	return nil
}

func (c *Config) validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for name, raw := range map[string]string{"public_url": c.PublicURL, "sendgrid.base_url": c.SendGrid.BaseURL,
		"x.base_url": c.X.BaseURL, "facebook.base_url": c.Facebook.BaseURL} {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("%s: %q is not an http(s) URL", name, raw)
		}
	}
	if c.SendGrid.BatchSize < 1 || c.SendGrid.BatchSize > 1000 {
		add("sendgrid.batch_size: %d is outside 1..1000 (SendGrid takes at most 1000 personalizations a request)", c.SendGrid.BatchSize)
	}
	if c.SendGrid.Concurrency < 1 {
		add("sendgrid.concurrency: must be at least 1")
	}
	if c.Facebook.Mode != "post" && c.Facebook.Mode != "comment" {
		add("facebook.mode: %q is not post or comment", c.Facebook.Mode)
	}
	if c.Facebook.RetractMode != "hide" && c.Facebook.RetractMode != "delete" {
		add("facebook.retract_mode: %q is not hide or delete", c.Facebook.RetractMode)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level: %q is not debug, info, warn or error", c.LogLevel)
	}
	if _, err := time.LoadLocation(c.Status.TimeZone); err != nil {
		add("status.time_zone: %q is not a time zone", c.Status.TimeZone)
	}
	if c.X.PollMin <= 0 || c.X.PollMax < c.X.PollMin {
		add("x.poll_min, x.poll_max: want 0 < poll_min <= poll_max (have %s, %s)", time.Duration(c.X.PollMin), time.Duration(c.X.PollMax))
	}
	if c.Worker.Lease < Duration(time.Second) {
		add("worker.lease: %s is too short (at least 1s)", time.Duration(c.Worker.Lease))
	}
	if len(problems) > 0 {
		return fmt.Errorf("config:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// emailEnabled, xEnabled and facebookEnabled say which channels are set up.
func (c *Config) emailEnabled() bool { return c.SendGrid.APIKey != "" }
func (c *Config) xEnabled() bool     { return c.X.ConsumerKey != "" }
func (c *Config) facebookEnabled() bool {
	return c.Facebook.PageToken != ""
}

// settingDocs lists every setting with its environment variable and help,
// for `breachcast config --help` and the README.
func settingDocs() [][3]string {
	var out [][3]string
	for _, st := range settings(&Config{}) {
		out = append(out, [3]string{st.key, st.env, st.doc})
	}
	return out
}
