package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Indexed Job of deploy/k8s runs one shard per completion index, and
// every pod's command line is one halo-loadtest accepts.
func TestK8sJob_EachIndexRunsItsShard(t *testing.T) {
	data, err := os.ReadFile("../../deploy/k8s/loadtest-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type container struct {
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Env     []struct {
			Name string `yaml:"name"`
		} `yaml:"env"`
	}
	var job struct {
		Kind string `yaml:"kind"`
		Spec struct {
			CompletionMode string `yaml:"completionMode"`
			Completions    int    `yaml:"completions"`
			Parallelism    int    `yaml:"parallelism"`
			Template       struct {
				Spec struct {
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if doc["kind"] == "Job" {
			b, _ := yaml.Marshal(doc)
			if err := yaml.Unmarshal(b, &job); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := job.Spec
	if job.Kind != "Job" || s.CompletionMode != "Indexed" || s.Completions < 2 || s.Parallelism != s.Completions || len(s.Template.Spec.Containers) != 1 {
		t.Fatalf("job %+v", job)
	}
	c := s.Template.Spec.Containers[0]
	if len(c.Command) != 1 || c.Command[0] != "halo-loadtest" {
		t.Fatalf("command %v", c.Command)
	}
	hasIndexEnv := false
	for _, e := range c.Env {
		hasIndexEnv = hasIndexEnv || e.Name == "JOB_COMPLETION_INDEX"
	}
	if !hasIndexEnv {
		t.Fatal("JOB_COMPLETION_INDEX is not in env: $(JOB_COMPLETION_INDEX) in args would not expand")
	}
	t.Setenv("HALO_LOADTEST_SECRET", "from-the-secret")
	t.Setenv("HALO_LOADTEST_TOKEN", "")
	for i := range s.Completions {
		var args []string
		for _, a := range c.Args {
			a = strings.ReplaceAll(a, "$(JOB_COMPLETION_INDEX)", strconv.Itoa(i))
			a = strings.Replace(a, "/scenario/scenario.yaml", "../../loadtest/scenarios/social-live.yaml", 1)
			args = append(args, a)
		}
		o, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatalf("pod %d: %v (args %v)", i, err, args)
		}
		if o.shard.Index != i || o.shard.Count != s.Completions || o.secret != "from-the-secret" || !strings.Contains(o.jsonOut, strconv.Itoa(i)) {
			t.Fatalf("pod %d runs shard %v with report %s", i, o.shard, o.jsonOut)
		}
	}
}
