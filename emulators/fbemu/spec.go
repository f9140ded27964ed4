package fbemu

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The endpoints the emulator serves, named as in Meta's codegen specs:
// node type, method, and edge ("#get", "#update", "#delete" for the node).
const (
	epPageGet        = "Page GET #get"
	epPageFeedGet    = "Page GET feed"
	epPageFeedPost   = "Page POST feed"
	epPostGet        = "PagePost GET #get"
	epPostUpdate     = "PagePost POST #update"
	epPostDelete     = "PagePost DELETE #delete"
	epPostComments   = "PagePost GET comments"
	epPostComment    = "PagePost POST comments"
	epCommentGet     = "Comment GET #get"
	epCommentUpdate  = "Comment POST #update"
	epCommentDelete  = "Comment DELETE #delete"
	epCommentReplies = "Comment GET comments"
	epCommentReply   = "Comment POST comments"
)

// genericParams are accepted on every endpoint: Graph's own request
// plumbing, which the codegen specs do not list per endpoint.
var genericParams = []string{
	"access_token", "appsecret_proof", "appsecret_time", "format", "method", "debug",
	"date_format", "pretty", "suppress_http_code", "locale", "fields", "limit", "after",
	"before", "summary",
}

// builtinParams are the parameters the emulator implements. Without the spec
// files they are the only ones accepted; with them, every parameter the spec
// lists is accepted (and the ones not implemented are ignored, as a real
// parameter with no visible effect would be).
var builtinParams = map[string][]string{
	epPageGet:        {},
	epPageFeedGet:    {"include_hidden", "limit"},
	epPageFeedPost:   {"message", "link", "published"},
	epPostGet:        {},
	epPostUpdate:     {"is_hidden", "message"},
	epPostDelete:     {},
	epPostComments:   {"filter", "order", "since"},
	epPostComment:    {"message"},
	epCommentGet:     {},
	epCommentUpdate:  {"is_hidden", "message"},
	epCommentDelete:  {},
	epCommentReplies: {"filter", "order", "since"},
	epCommentReply:   {"message"},
}

// builtinFields are the fields the emulator serves per node type.
var builtinFields = map[string][]string{
	"Page":     {"id", "name", "link", "category", "fan_count", "followers_count", "is_published", "can_post", "username"},
	"PagePost": {"id", "message", "created_time", "updated_time", "from", "is_hidden", "is_published", "permalink_url"},
	"Comment":  {"id", "message", "created_time", "from", "parent", "is_hidden", "permalink_url", "can_hide", "can_remove", "comment_count", "object"},
}

// specNodes are the spec files read by LoadSpec, one per node type.
var specNodes = []string{"Page", "PagePost", "Comment"}

// Spec is the subset of Meta's machine-readable Graph API spec
// (facebook-business-sdk-codegen api_specs) the emulator checks requests
// against: the parameters of each endpoint and the fields of each node.
type Spec struct {
	params map[string][]string // endpoint key -> parameter names
	fields map[string][]string // node type -> field names
}

type specFile struct {
	APIs []struct {
		Method   string `json:"method"`
		Endpoint string `json:"endpoint"`
		Name     string `json:"name"`
		Params   []struct {
			Name string `json:"name"`
		} `json:"params"`
	} `json:"apis"`
	Fields []struct {
		Name string `json:"name"`
	} `json:"fields"`
}

// LoadSpec reads Page.json, PagePost.json and Comment.json from dir (the
// graph_api_specs folder of the shared conformance data).
func LoadSpec(dir string) (*Spec, error) {
	s := &Spec{params: map[string][]string{}, fields: map[string][]string{}}
	for _, node := range specNodes {
		b, err := os.ReadFile(filepath.Join(dir, node+".json"))
		if err != nil {
			return nil, fmt.Errorf("load graph spec: %w", err)
		}
		var f specFile
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("load graph spec %s: %w", node, err)
		}
		for _, api := range f.APIs {
			edge := api.Endpoint
			if edge == "" {
				edge = api.Name
			}
			var names []string
			for _, p := range api.Params {
				names = append(names, p.Name)
			}
			s.params[node+" "+strings.ToUpper(api.Method)+" "+edge] = names
		}
		for _, fl := range f.Fields {
			s.fields[node] = append(s.fields[node], fl.Name)
		}
	}
	return s, nil
}

// Params returns the parameter names the spec lists for an endpoint such as
// "Page POST feed"; ok is false when the spec has no such endpoint.
func (s *Spec) Params(endpoint string) (names []string, ok bool) {
	names, ok = s.params[endpoint]
	return slices.Clone(names), ok
}

// Fields returns the field names the spec lists for a node type.
func (s *Spec) Fields(node string) []string { return slices.Clone(s.fields[node]) }

// paramAllowed reports whether name may be sent to endpoint.
func (s *Spec) paramAllowed(endpoint, name string) bool {
	if slices.Contains(genericParams, name) || slices.Contains(builtinParams[endpoint], name) {
		return true
	}
	return s != nil && slices.Contains(s.params[endpoint], name)
}

// fieldKnown reports whether field exists on node.
func (s *Spec) fieldKnown(node, field string) bool {
	if slices.Contains(builtinFields[node], field) {
		return true
	}
	return s != nil && slices.Contains(s.fields[node], field)
}
