package main

import (
	"go/parser"
	"go/token"
	"io/fs"
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
	const module = "github.com/starlingcache/starling/"
	// allowed maps a package tree to the trees its code may import.
	allowed := map[string][]string{
		"cmd":       {"node", "client"},
		"node":      {"node", "gossip", "ring", "transport"},
		"client":    {"client", "ring", "transport"},
		"ring":      {},
		"gossip":    {},
		"transport": {},
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
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
			return nil // examples, deploy: programs that use the public packages
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
	for tree := range allowed {
		if !checked[tree] {
			t.Errorf("no Go file found under %s/: is the walk rooted at the module?", tree)
		}
	}
}
