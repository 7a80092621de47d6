package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// normalize fills in every default and resolves what can be resolved, so the
// canonical form depends only on meaning, not on how the file said it.
// Loaders call it after building the model and before validation.
func normalize(p *Pipeline) {
	if p.Executor == "" {
		p.Executor = DefaultExecutor
	}
	p.Executor = canonicalExecutor(p.Executor)
	if p.ComponentRegistry == "" {
		p.ComponentRegistry = DefaultComponentRegistry
	}
	trusted := p.TrustedRegistries[:0:0]
	for _, t := range p.TrustedRegistries {
		if n := normalizeTrusted(t); n != "" {
			trusted = append(trusted, n)
		} else {
			trusted = append(trusted, t) // validation reports it
		}
	}
	p.TrustedRegistries = sortedUnique(trusted)
	normalizeNomad(p)
	normalizeKubernetes(p)
	for _, c := range p.Components {
		normalizeComponent(p, c)
	}
	p.SortComponents()
}

// normalizeComponent fills in one component's defaults, one part at a time.
func normalizeComponent(p *Pipeline, c *Component) {
	normalizeImage(p, c)
	normalizeImagePolicy(p, c)
	c.Inputs = sortedUnique(c.Inputs)
	c.DependsOn = sortedUnique(c.DependsOn)
	normalizePorts(c.Ports)
	if c.Health != nil {
		normalizeHealth(c.Health)
	}
	normalizeRestart(c)
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	for k, v := range c.Env {
		v.Deferred = HasRefs(v.Value)
		c.Env[k] = v
	}
	if len(c.Env) == 0 {
		c.Env = nil
	}
	sort.Strings(c.Secrets)
}

// normalizeImage settles the executor, the image a registry type names, and
// the pull policy and image ID as the canonical form spells them.
func normalizeImage(p *Pipeline, c *Component) {
	if c.Executor == "" {
		c.Executor = p.Executor
	}
	c.Executor = canonicalExecutor(c.Executor)
	if c.Image == "" && len(c.Command) == 0 {
		if name, version, ok := strings.Cut(c.Type, "@"); ok && name != "" && version != "" {
			c.Image = p.ComponentRegistry + "/" + name + ":" + version
		}
	}
	c.Pull = strings.ToLower(strings.TrimSpace(c.Pull))
	if c.Pull == PullMissing && c.RunsImage() {
		// The default is left out of the canonical form, so pipelines
		// written before pull existed keep their spec hashes.
		c.Pull = ""
	}
	if c.ImageID != "" {
		c.ImageID = normalizeImageID(c.ImageID)
	}
}

func normalizePorts(ports []Port) {
	for i := range ports {
		pt := &ports[i]
		if pt.Protocol == "" {
			pt.Protocol = DefaultPortProtocol
		}
		pt.Protocol = strings.ToLower(pt.Protocol)
		if pt.HostPort != 0 && pt.HostIP == "" {
			pt.HostIP = DefaultHostIP
		}
	}
}

func normalizeHealth(h *Health) {
	if h.Interval == 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout == 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.FailureThreshold == 0 {
		h.FailureThreshold = DefaultFailureThreshold
	}
	if h.SuccessThreshold == 0 {
		h.SuccessThreshold = DefaultSuccessThreshold
	}
	if h.Type == HealthHTTP && h.URL != "" {
		// A full URL names the port too: it is the component's
		// HEALTH_PORT, and what a registration's health_endpoint is
		// matched against.
		if u, err := url.Parse(h.URL); err == nil {
			if h.Path == "" {
				h.Path = u.Path
			}
			if port, err := strconv.Atoi(u.Port()); err == nil && h.Port == 0 {
				h.Port = port
			}
		}
	}
	if h.Type == HealthHTTP && h.Path == "" && h.URL == "" {
		h.Path = "/health"
	}
}

// normalizeRestart spells the policy canonically and gives max_retries and
// the backoff the policy's defaults where the file left them out.
func normalizeRestart(c *Component) {
	r := &c.Restart
	if r.Policy == "" {
		r.Policy = DefaultRestartPolicy
	}
	r.Policy = strings.ToLower(r.Policy)
	switch r.Policy {
	case "unless-stopped":
		r.Policy = RestartAlways
	case "no":
		r.Policy = RestartNever
	}
	if !c.maxRetriesSet {
		switch r.Policy {
		case RestartOnFailure:
			r.MaxRetries = DefaultOnFailureRetries
		case RestartAlways:
			r.MaxRetries = UnlimitedRetries
		default:
			r.MaxRetries = 0
		}
	}
	if r.Policy == RestartNever {
		r.MaxRetries = 0
	}
	if !c.backoffInitialSet && r.Backoff.Initial == 0 {
		r.Backoff.Initial = DefaultBackoffInitial
	}
	if r.Backoff.Max == 0 {
		r.Backoff.Max = DefaultBackoffMax
	}
	if r.Backoff.Multiplier == 0 {
		r.Backoff.Multiplier = DefaultBackoffMultiplier
	}
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	set := map[string]bool{}
	for _, s := range in {
		set[s] = true
	}
	return sortedKeys(set)
}

// ConfigEnvName is the environment variable a registry-style config key
// becomes: start_ledger -> START_LEDGER.
func ConfigEnvName(key string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(key))
}

// ConfigValueString renders a config value as an environment value: strings
// as they are, numbers and booleans as written, lists and maps as JSON.
func ConfigValueString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", fmt.Errorf("config value: %w", err)
		}
		return string(b), nil
	}
}

// MergeConfig adds registry-style config to the component's env: each key
// upper-cased. An explicit env entry of the same name wins.
func (c *Component) MergeConfig(cfg map[string]string) {
	if len(cfg) == 0 {
		return
	}
	if c.Env == nil {
		c.Env = map[string]EnvValue{}
	}
	for k, v := range cfg {
		name := ConfigEnvName(k)
		if _, ok := c.Env[name]; ok {
			continue
		}
		c.Env[name] = EnvValue{Value: v}
	}
}
