package archtest

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath   string
	Dir          string
	Name         string
	Standard     bool
	Imports      []string
	TestGoFiles  []string
	XTestGoFiles []string
	GoFiles      []string
}

// listPackages runs `go list` over the module once.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", Module+"/...")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, errb.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 3 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func rel(importPath string) string {
	return strings.TrimPrefix(strings.TrimPrefix(importPath, Module), "/")
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func TestDependencyDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		r := rel(p.ImportPath)
		for _, rule := range Rules {
			if !under(r, rule.From) {
				continue
			}
			for _, imp := range p.Imports {
				allowed := false
				for _, a := range rule.Allow {
					if (a == "std" && isStd(imp)) || under(imp, a) {
						allowed = true
					}
				}
				if allowed {
					continue
				}
				if rule.Only {
					t.Errorf("%s imports %s: %s", p.ImportPath, imp, rule.Reason)
				}
				for _, d := range rule.Deny {
					if under(imp, d) {
						t.Errorf("%s imports %s: %s", p.ImportPath, imp, rule.Reason)
					}
				}
			}
		}
		for _, imp := range p.Imports {
			for prefix, owners := range Exclusive {
				if !under(imp, prefix) {
					continue
				}
				ok := false
				for _, o := range owners {
					if under(r, o) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s imports %s, which only %v may import", p.ImportPath, imp, owners)
				}
			}
		}
	}
}

// The rules must be able to fail: check the matcher on known cases.
func TestRuleMatcher(t *testing.T) {
	if !isStd("crypto/ecdh") || isStd("golang.org/x/crypto/argon2") {
		t.Fatal("isStd misclassifies")
	}
	if !under("crypto/ratchet", "crypto") || under("cryptox", "crypto") {
		t.Fatal("under misclassifies")
	}
}

func TestFileRules(t *testing.T) {
	byPath := map[string]pkg{}
	for _, p := range listPackages(t) {
		byPath[rel(p.ImportPath)] = p
	}
	for _, rule := range FileRules {
		p, ok := byPath[rule.Package]
		if !ok {
			t.Errorf("file rule for %s: no such package", rule.Package)
			continue
		}
		files, err := filesImporting(p.Dir, p.GoFiles, rule.Import)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !slices.Contains(rule.Files, f) {
				t.Errorf("%s/%s imports %s: %s", rule.Package, f, rule.Import, rule.Reason)
			}
		}
	}
}

// filesImporting returns the files among names, in dir, that import
// prefix or a package under it.
func filesImporting(dir string, names []string, prefix string) ([]string, error) {
	var out []string
	for _, name := range names {
		file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			return nil, err
		}
		for _, spec := range file.Imports {
			if under(strings.Trim(spec.Path.Value, `"`), prefix) {
				out = append(out, name)
				break
			}
		}
	}
	return out, nil
}

// The file rules must be able to fail: filesImporting on known files.
func TestFilesImporting(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"daemon.go": "package main\n\nimport \"" + Module + "/node\"\n",
		"client.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"" + Module + "/node/group\"\n)\n",
		"chat.go":   "package main\n\nimport \"" + Module + "/nodex\"\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := filesImporting(dir, []string{"chat.go", "client.go", "daemon.go"}, Module+"/node")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"client.go", "daemon.go"}; !slices.Equal(got, want) {
		t.Fatalf("filesImporting = %v, want %v", got, want)
	}
}

func TestPackageComments(t *testing.T) {
	for _, p := range listPackages(t) {
		documented := false
		for _, f := range p.GoFiles {
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if file.Doc == nil {
				continue
			}
			text := file.Doc.Text()
			if p.Name == "main" && strings.HasPrefix(text, "Command ") ||
				strings.HasPrefix(text, "Package "+p.Name+" ") {
				documented = true
			}
		}
		if !documented {
			t.Errorf("%s has no package comment starting %q", p.ImportPath, "Package "+p.Name)
		}
	}
}

// Top-level layout required by the design card.
func TestLayout(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, name := range []string{"cmd", "node", "crypto", "relay", "sync", "pushbridge", "docs", "go.mod", "go.sum", "Makefile", "README.md"} {
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			t.Errorf("top-level %s missing: %v", name, err)
		}
	}
}

// importClass orders import groups: the standard library, other modules,
// then this module (STYLE.md).
func importClass(path string) int {
	switch {
	case under(path, Module):
		return 2
	case isStd(path):
		return 0
	default:
		return 1
	}
}

// Imports come in those groups, in that order, each group separated by a
// blank line and never mixed.
func TestImportGroups(t *testing.T) {
	for _, p := range listPackages(t) {
		files := append(append(append([]string{}, p.GoFiles...), p.TestGoFiles...), p.XTestGoFiles...)
		for _, f := range files {
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, filepath.Join(p.Dir, f), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			prevClass, prevLine := -1, 0
			for _, spec := range file.Imports {
				path := strings.Trim(spec.Path.Value, `"`)
				class, line := importClass(path), fset.Position(spec.Pos()).Line
				newGroup := line > prevLine+1
				if class < prevClass || (class > prevClass && prevClass >= 0 && !newGroup) || (class == prevClass && newGroup) {
					t.Errorf("%s: import %q is out of its group (standard library, other modules, %s)", filepath.Join(p.Dir, f), path, Module)
					break
				}
				prevClass, prevLine = class, line
			}
		}
	}
}
