package mobile

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The bindings an app builds: gobind generates them for Go, Java and
// Objective-C; the generated Go compiles and links into the JNI library
// (for the host, against stand-ins for the NDK's headers and libraries);
// the generated Java compiles against a stand-in android.content.Context.
// Packaging the .aar and .xcframework needs the Android SDK and Xcode
// (docs/MOBILE.md); everything before that is checked here.
//
// javac and jni.h come from a JDK (.ci/run installs default-jdk-headless).
// Without one the test is skipped, unless HUSH_REQUIRE_JAVAC=1 (CI), when
// it fails.
func TestBindings(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and compiles the gomobile bindings")
	}
	javac, jdk := findJDK(t)
	root := moduleRoot(t)
	out := t.TempDir()
	runGo(t, root, nil, "tool", "gobind", "-lang=go,java,objc", "-outdir", out, "./mobile")

	// Every exported function is bound; gobind skips what it cannot bind
	// with a comment instead of failing.
	mustContain(t, filepath.Join(out, "java/mobile/Mobile.java"),
		"public static native void start(String configJSON, Callback cb) throws Exception;",
		"public static native String call(String method, String paramsJSON) throws Exception;",
		"public static native String drain(long timeoutMs) throws Exception;",
		"public static native void close() throws Exception;")
	mustContain(t, filepath.Join(out, "java/mobile/Callback.java"), "public void onEvent(String eventJSON);")
	mustContain(t, filepath.Join(out, "src/gobind/Mobile.objc.h"),
		"FOUNDATION_EXPORT BOOL MobileStart(NSString* _Nullable configJSON, id<MobileCallback> _Nullable cb, NSError* _Nullable* _Nullable error);",
		"FOUNDATION_EXPORT NSString* _Nonnull MobileCall(",
		"FOUNDATION_EXPORT NSString* _Nonnull MobileDrain(long timeoutMs,",
		"FOUNDATION_EXPORT BOOL MobileClose(",
		"- (void)onEvent:(NSString* _Nullable)eventJSON;")
	filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), "skipped") {
				t.Errorf("%s: gobind skipped something it cannot bind:\n%s", path, grepLines(string(b), "skipped"))
			}
		}
		return err
	})

	t.Run("go", func(t *testing.T) { compileGo(t, out, jdk) })
	t.Run("java", func(t *testing.T) { compileJava(t, out, javac) })
}

// findJDK returns javac and the JDK's directory (with include/jni.h).
func findJDK(t *testing.T) (javac, jdk string) {
	t.Helper()
	javac, err := exec.LookPath("javac")
	if err == nil {
		var real string
		if real, err = filepath.EvalSymlinks(javac); err == nil {
			jdk = filepath.Dir(filepath.Dir(real))
			_, err = os.Stat(filepath.Join(jdk, "include", "jni.h"))
		}
	}
	if err != nil {
		if os.Getenv("HUSH_REQUIRE_JAVAC") == "1" {
			t.Fatalf("no JDK (javac and include/jni.h): %v; install default-jdk-headless", err)
		}
		t.Skipf("no JDK (javac and include/jni.h): %v; set HUSH_REQUIRE_JAVAC=1 to fail instead", err)
	}
	return javac, jdk
}

// compileGo builds the generated Go (package main in src/gobind: the JNI
// entry points, cgo and golang.org/x/mobile/bind/seq) into a shared
// library. The android build tag selects the Android files on the host;
// the NDK's headers and libraries it names are stood in for (the library
// is not loaded: Go's Android TLS set-up needs bionic), and jni.h is the
// JDK's.
func compileGo(t *testing.T, out, jdk string) {
	files := map[string]string{
		"stub/android/log.h": `#include <stdarg.h>
#define ANDROID_LOG_INFO 4
#define ANDROID_LOG_ERROR 6
#define ANDROID_LOG_FATAL 7
int __android_log_print(int prio, const char *tag, const char *fmt, ...);
int __android_log_vprint(int prio, const char *tag, const char *fmt, va_list ap);
int __android_log_write(int prio, const char *tag, const char *text);
`,
		"stub/android/api-level.h": "static inline int android_get_device_api_level(void) { return 34; }\n",
		// The NDK's jni.h includes stdint.h; the JDK's does not.
		"stub/jni.h":         "#include <stdint.h>\n#include_next <jni.h>\n",
		"stub/liblog.a":      "!<arch>\n", // empty archives: -llog and -landroid resolve,
		"stub/libandroid.a":  "!<arch>\n", // their symbols stay undefined in the .so
		"gobind/placeholder": "",
	}
	mod := tempModule(t, files)
	gen := filepath.Join(out, "src", "gobind")
	entries, err := os.ReadDir(gen)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(gen, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, "gobind", e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(mod, "gobind", "placeholder"))
	stub := filepath.Join(mod, "stub")
	lib := filepath.Join(mod, "libgojni.so")
	runGo(t, mod, []string{
		"GOFLAGS=-mod=mod", "CGO_ENABLED=1",
		// JDK and NDK disagree on AttachCurrentThread's pointer type.
		"CGO_CFLAGS=-Wno-incompatible-pointer-types -I" + stub + " -I" + filepath.Join(jdk, "include") + " -I" + filepath.Join(jdk, "include", "linux"),
		"CGO_LDFLAGS=-L" + stub,
	}, "build", "-tags=android,netgo,osusergo", "-buildmode=c-shared", "-ldflags=-checklinkname=0", "-o", lib, "./gobind")

	f, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"Java_mobile_Mobile_start": false, "Java_mobile_Mobile_call": false,
		"Java_mobile_Mobile_drain": false, "Java_mobile_Mobile_close": false,
		"Java_mobile_Mobile_00024proxyCallback_onEvent": false}
	for _, s := range syms {
		if _, ok := want[s.Name]; ok && s.Section != elf.SHN_UNDEF {
			want[s.Name] = true
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("the JNI library does not export %s", name)
		}
	}
}

// compileJava compiles the generated Java (the mobile classes and go.Seq)
// against a stand-in for android.content.Context, which go/Seq.java names.
func compileJava(t *testing.T, out, javac string) {
	stub := filepath.Join(t.TempDir(), "android", "content", "Context.java")
	if err := os.MkdirAll(filepath.Dir(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stub, []byte("package android.content;\n\npublic class Context {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sources := []string{stub}
	filepath.WalkDir(filepath.Join(out, "java"), func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".java") {
			sources = append(sources, path)
		}
		return err
	})
	classes := t.TempDir()
	cmd := exec.Command(javac, append([]string{"-d", classes, "-Xlint:none"}, sources...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, b)
	}
	for _, c := range []string{"mobile/Mobile.class", "mobile/Callback.class", "go/Seq.class"} {
		if _, err := os.Stat(filepath.Join(classes, c)); err != nil {
			t.Errorf("javac made no %s: %v", c, err)
		}
	}
}

func mustContain(t *testing.T, path string, wants ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wants {
		if !strings.Contains(string(b), w) {
			t.Errorf("%s lacks %q", filepath.Base(path), w)
		}
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
