package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsPointOneWay checks the layering every package of the module
// keeps (docs/architecture.md): the command sees node and client only;
// node and client see the three base packages, never each other; ring,
// gossip and transport see none of ours. Test files may reach lower (a
// test fakes a transport server, say), so only the code that ships is
// checked.
func TestImportsPointOneWay(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var module string
	for line := range strings.Lines(string(gomod)) {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			module = strings.Trim(strings.TrimSpace(m), `"`) + "/"
			break
		}
	}
	if module == "" {
		t.Fatal("no module line in go.mod")
	}
	// allowed maps a package tree to the trees its code may import.
	allowed := map[string][]string{
		"cmd":       {"node", "client"},
		"node":      {"node", "gossip", "ring", "transport"},
		"client":    {"client", "ring", "transport"},
		"ring":      {},
		"gossip":    {},
		"transport": {},
		// The forwarding baseline bench/resp.sh runs: a measuring
		// instrument that must owe nothing to the code it is compared with.
		"bench": {},
	}
	// Programs that use the public packages, as any user's would.
	unlayered := map[string]bool{"examples": true, "deploy": true}
	checked := map[string]bool{}
	seen := 0 // imports of ours, so a wrong module path cannot pass
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		tree, _, _ := strings.Cut(rel, "/")
		ok, layered := allowed[tree]
		if !layered {
			if !unlayered[tree] {
				t.Errorf("%s: %s/ is neither a layer nor a program: add it to the test's table", rel, tree)
			}
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked[tree] = true
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			ours, isOurs := strings.CutPrefix(p, module)
			if !isOurs {
				continue
			}
			seen++
			to, _, _ := strings.Cut(ours, "/")
			permitted := false
			for _, a := range ok {
				permitted = permitted || a == to
			}
			if !permitted {
				t.Errorf("%s imports %s: %s may import only %v of ours", rel, ours, tree, ok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen == 0 {
		t.Errorf("no import of %s* found: is the module path right?", module)
	}
	for tree := range allowed {
		if !checked[tree] {
			t.Errorf("no Go file found under %s/: is the walk rooted at the module?", tree)
		}
	}
}
