package cli

import (
	"testing"

	"github.com/flowctl/flowctl/internal/config"
)

func TestVarFlagsShareOneOrderedList(t *testing.T) {
	var vars []config.VarArg
	v, f := &varFlag{vars: &vars}, &varFlag{vars: &vars, file: true}
	for _, step := range []struct {
		flag *varFlag
		arg  string
	}{{v, "a=1"}, {f, "x.vars"}, {v, " b = two=2"}} {
		if err := step.flag.Set(step.arg); err != nil {
			t.Fatal(err)
		}
	}
	want := []config.VarArg{{Name: "a", Value: "1"}, {File: "x.vars"}, {Name: "b", Value: " two=2"}}
	if len(vars) != len(want) {
		t.Fatalf("got %+v", vars)
	}
	for i := range want {
		if vars[i] != want[i] {
			t.Errorf("vars[%d] = %+v, want %+v", i, vars[i], want[i])
		}
	}
}
