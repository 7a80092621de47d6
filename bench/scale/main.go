// Command scale measures flowctl with pipelines of many process components
// (issue #18): a generated pipeline of N components in ten layers of N/10,
// each component of a layer reading two of the layer before, every one
// `command = ["sleep", "1000000"]` with no health block.
//
//	go run ./bench/scale -n 100,1000 -parallelism 20 -runs 1
//
// For each N, each run it times, in this order and on the same machine:
//
//   - direct: the floor of apply — the same N commands started by this
//     program with os/exec, -parallelism at a time, in layer order (a
//     layer's commands start once the layer before has started), with no
//     shim, no state, no plan;
//   - direct-stop: the floor of destroy — SIGTERM to those N processes and
//     a wait for each, -parallelism at a time;
//   - supervised (with "direct"): the floor of any design that keeps one Go
//     process per component, as flowctl's shim does — the same N commands,
//     each started by a minimal Go supervisor (this program, re-executed:
//     it starts the command, says so on a pipe, forwards SIGTERM and waits;
//     no log, no record, no state), and stopped through it;
//   - apply: `flowctl apply -auto-approve -parallelism P` from nothing;
//   - plan: a no-change `flowctl plan` (refresh on) of the N running,
//     -repeat times (median), with the CLI's peak RSS (its rusage);
//   - status: `flowctl status`, the same way;
//   - memory: the proportional (PSS) and resident (RSS) set of every shim
//     (from /proc/PID/smaps_rollup) and of the pipeline's `flowctl serve`;
//   - crash (with -crash K): K of the N components killed at once (SIGKILL
//     to the component), and the time until the restart watcher of the
//     pipeline's serve has each one running again (its run record names a
//     new, live instance) — the watcher's crash → running latency;
//   - destroy: `flowctl destroy -auto-approve -parallelism P`.
//
// It prints the machine's load (uptime) before and after each N, and
// checks that nothing it started is left behind. The flowctl binaries are
// built from this tree into a temporary folder, unless -bin names a folder
// that holds flowctl and flowctl-shim.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == superviseArg {
		os.Exit(supervise(os.Args[2:]))
	}
	ns := flag.String("n", "100,1000", "pipeline sizes, comma-separated (multiples of 10)")
	par := flag.Int("parallelism", 20, "apply's and destroy's -parallelism, and the floor's")
	runs := flag.Int("runs", 1, "runs per size")
	repeat := flag.Int("repeat", 5, "plan and status runs per measure (the median is reported)")
	crash := flag.Int("crash", 0, "components to kill at once for the watcher's crash → running latency (0: skip)")
	bin := flag.String("bin", "", "folder with flowctl and flowctl-shim (default: build them)")
	keep := flag.Bool("keep", false, "keep the work folder")
	logsFor := flag.Duration("logs", 0, "follow `flowctl logs -f` for this long, each component printing a numbered line a second instead of sleeping (0: skip)")
	backoff := flag.String("backoff", "", "each component's restart backoff initial delay (default: the policy's own)")
	only := flag.String("only", "", "comma-separated subset of direct,apply,plan,status,memory,crash,destroy (default: all)")
	group := flag.Int("group", 1, "commands per minimal Go supervisor in the supervised floor (1: one each, as flowctl's shim; more: what a supervisor of several would cost)")
	flag.Parse()
	if *group < 1 {
		*group = 1
	}
	if err := run(*ns, *par, *runs, *repeat, *crash, *bin, *keep, *only, *backoff, *logsFor, *group); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type bench struct {
	flowctl, shim string
	par, repeat   int
	crash         int
	backoff       string
	logsFor       time.Duration
	group         int // commands per supervisor in the supervised floor
	want          func(string) bool
	lastCPU       time.Duration // CPU time of the last flowctl command run
}

func run(ns string, par, runs, repeat, crash int, bin string, keep bool, only, backoff string, logsFor time.Duration, group int) error {
	work, err := os.MkdirTemp("", "flowctl-scale-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	} else {
		fmt.Println("work folder:", work)
	}
	if bin == "" {
		bin = filepath.Join(work, "bin")
		build := exec.Command("go", "build", "-o", bin+"/", "./cmd/flowctl", "./cmd/flowctl-shim")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	b := &bench{flowctl: filepath.Join(bin, "flowctl"), shim: filepath.Join(bin, "flowctl-shim"), par: par, repeat: repeat, crash: crash, backoff: backoff, logsFor: logsFor, group: group}
	b.flowctl, _ = filepath.Abs(b.flowctl)
	b.shim, _ = filepath.Abs(b.shim)
	b.want = func(s string) bool { return only == "" || slices.Contains(strings.Split(only, ","), s) }
	for _, f := range strings.Split(ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 || n%10 != 0 {
			return fmt.Errorf("-n: %q is not a multiple of 10", f)
		}
		for r := range runs {
			dir := filepath.Join(work, fmt.Sprintf("n%d-r%d", n, r))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			fmt.Printf("== N=%d run %d  load: %s\n", n, r+1, load())
			err := b.once(dir, n)
			fmt.Printf("   load after: %s\n", load())
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// once measures one size in dir.
func (b *bench) once(dir string, n int) (err error) {
	if err := os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte(Pipeline(fmt.Sprintf("scale%d", n), n, b.backoff, b.logsFor > 0)), 0o644); err != nil {
		return err
	}
	defer func() {
		// Whatever happened, nothing of this size stays behind.
		_, _, _ = b.flowctlRun(dir, "destroy", "-auto-approve", "-parallelism", "100")
		_, _, _ = b.flowctlRun(dir, "serve", "stop")
		if left := b.shims(); len(left) > 0 {
			fmt.Printf("   %d shims left behind: killing them\n", len(left))
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			if err == nil {
				err = fmt.Errorf("%d shims were left behind", len(left))
			}
		}
	}()
	var direct, directStop, supervised, supervisedStop time.Duration
	if b.want("direct") {
		procs, d, err := Direct(n, b.par)
		if err != nil {
			return err
		}
		direct = d
		directStop = StopDirect(procs, b.par)
		fmt.Printf("   direct start    %8.3f s\n   direct stop     %8.3f s\n", direct.Seconds(), directStop.Seconds())
		sups, d, err := Supervised(n, b.par, b.group)
		if err != nil {
			return err
		}
		supStop := StopDirect(sups, b.par)
		supervised, supervisedStop = d, supStop
		fmt.Printf("   supervised start %7.3f s  = %.2f × direct (one Go process per %d component(s), doing nothing else)\n   supervised stop %8.3f s  = %.2f × direct\n",
			d.Seconds(), d.Seconds()/direct.Seconds(), b.group, supStop.Seconds(), supStop.Seconds()/directStop.Seconds())
	}
	if !b.want("apply") {
		return nil
	}
	d, rss, err := b.flowctlRun(dir, "apply", "-auto-approve", "-parallelism", strconv.Itoa(b.par))
	if err != nil {
		return err
	}
	fmt.Printf("   apply           %8.3f s  max RSS %6.1f MiB%s%s\n", d.Seconds(), mib(rss), ratio(d, direct), ratioTo(d, supervised, "supervised"))
	fmt.Printf("   CPU             apply %.2f s; so far serve %.2f s, shims %.2f s (user+system)\n", b.lastCPU.Seconds(), cpuOf(pidsOf(b.flowctl)), cpuOf(b.shims()))
	for _, cmd := range []string{"plan", "status"} {
		if !b.want(cmd) {
			continue
		}
		var walls []time.Duration
		var rsss []int64
		for range b.repeat {
			d, rss, err := b.flowctlRun(dir, cmd)
			if err != nil {
				return err
			}
			walls, rsss = append(walls, d), append(rsss, rss)
		}
		slices.Sort(walls)
		slices.Sort(rsss)
		fmt.Printf("   %-15s %8.3f s  max RSS %6.1f MiB  (median of %d; min %.3f s, max %.3f s)\n", cmd, walls[len(walls)/2].Seconds(), mib(rsss[len(rsss)/2]), len(walls), walls[0].Seconds(), walls[len(walls)-1].Seconds())
	}
	if b.want("memory") {
		b.memory(n)
	}
	if b.logsFor > 0 && b.want("logs") {
		if err := b.follow(dir, n); err != nil {
			return err
		}
	}
	if b.crash > 0 && b.want("crash") {
		if err := b.crashes(dir, n); err != nil {
			return err
		}
	}
	if b.want("destroy") {
		d, _, err := b.flowctlRun(dir, "destroy", "-auto-approve", "-parallelism", strconv.Itoa(b.par))
		if err != nil {
			return err
		}
		fmt.Printf("   destroy         %8.3f s%s%s\n", d.Seconds(), ratio(d, directStop), ratioTo(d, supervisedStop, "supervised"))
	}
	return nil
}

func ratio(d, floor time.Duration) string {
	if floor == 0 {
		return ""
	}
	return fmt.Sprintf("  = %.2f × the floor", d.Seconds()/floor.Seconds())
}

// ratioTo is d against another floor, named.
func ratioTo(d, floor time.Duration, name string) string {
	if floor == 0 {
		return ""
	}
	return fmt.Sprintf(", %.2f × the %s floor", d.Seconds()/floor.Seconds(), name)
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// flowctlRun runs flowctl in dir and returns its wall time and peak RSS
// (KiB, from its rusage: the CLI alone, not the serve it may start).
func (b *bench) flowctlRun(dir string, args ...string) (time.Duration, int64, error) {
	cmd := exec.Command(b.flowctl, append([]string{"--no-color"}, args...)...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		tail := out.String()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return d, 0, fmt.Errorf("flowctl %v: %v\n%s", args, err, tail)
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	b.lastCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return d, rss, nil
}

// Pipeline is the generated pipeline: ten layers of n/10, each component
// reading two of the layer before; with backoff, each restarts after that
// initial delay; with talk, each prints "line I" once a second (I = 1, 2,
// …) instead of sleeping: a bash loop that waits with read's timeout on a
// pipe nothing writes to, so that it forks nothing per line (a `sleep 1`
// per line is 1,000 process starts a second, more than two cores of some
// machines can do, and the benchmark would measure that).
func Pipeline(name string, n int, backoff string, talk bool) string {
	command := `["sleep", "1000000"]`
	if talk {
		command = `["bash", "-c", "exec 3< <(exec sleep 1000000); i=0; while :; do i=$((i+1)); echo line $i; read -t 1 -u 3; done"]`
	}
	width := n / 10
	var s strings.Builder
	fmt.Fprintf(&s, "pipeline %q {\n  executor = \"process\"\n}\n", name)
	addr := func(l, i int) string {
		if l == 0 {
			return fmt.Sprintf("source.l0-c%d", i)
		}
		return fmt.Sprintf("processor.l%d-c%d", l, i)
	}
	for l := range 10 {
		for i := range width {
			kind, _, _ := strings.Cut(addr(l, i), ".")
			fmt.Fprintf(&s, "\n%s \"l%d-c%d\" {\n  command = %s\n", kind, l, i, command)
			if l > 0 {
				in := []string{addr(l-1, i)}
				if width > 1 {
					in = append(in, addr(l-1, (i+1)%width))
				}
				fmt.Fprintf(&s, "  inputs  = [%s]\n", strings.Join(in, ", "))
			}
			if backoff != "" {
				fmt.Fprintf(&s, "  restart {\n    backoff {\n      initial = %q\n    }\n  }\n", backoff)
			}
			s.WriteString("}\n")
		}
	}
	return s.String()
}

// Direct starts n `sleep 1000000` with os/exec, par at a time, layer by
// layer, and returns them and the time it took.
func Direct(n, par int) ([]*exec.Cmd, time.Duration, error) {
	return layered(n, par, "direct", func() (*exec.Cmd, error) {
		cmd := exec.Command("sleep", "1000000")
		return cmd, cmd.Start()
	})
}

// superviseArg runs this program as the minimal supervisor of Supervised.
const superviseArg = "__supervise"

// Supervised is Direct with the commands started by minimal Go
// supervisors (this program re-executed with superviseArg), group
// commands each, which report on their file descriptor 3 once their
// commands run: it returns the supervisors once every one has reported,
// and the time that took.
func Supervised(n, par, group int) ([]*exec.Cmd, time.Duration, error) {
	if n%(10*group) != 0 {
		return nil, 0, fmt.Errorf("-group %d: %d components are not ten layers of whole groups", group, n)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	return layered(n/group, par, "supervised", func() (*exec.Cmd, error) { return startSupervised(self, group) })
}

// layered runs start n times, par at a time, in ten layers (a layer
// begins once the one before has started), and returns what was started
// and the time it took; on any failure it stops everything started.
func layered(n, par int, what string, start func() (*exec.Cmd, error)) ([]*exec.Cmd, time.Duration, error) {
	procs := make([]*exec.Cmd, n)
	errs := make([]error, n)
	sem := make(chan struct{}, par)
	began := time.Now()
	width := n / 10
	for l := range 10 {
		var wg sync.WaitGroup
		for i := range width {
			k := l*width + i
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				procs[k], errs[k] = start()
			})
		}
		wg.Wait()
	}
	d := time.Since(began)
	for k, err := range errs {
		if err != nil {
			StopDirect(procs, par)
			return nil, 0, fmt.Errorf("%s start %d: %w", what, k, err)
		}
	}
	return procs, d, nil
}

// startSupervised starts one supervisor of group `sleep 1000000` and
// waits for its report.
func startSupervised(self string, group int) (*exec.Cmd, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(self, superviseArg, strconv.Itoa(group), "sleep", "1000000")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		return nil, err
	}
	var b [1]byte
	if _, err := r.Read(b[:]); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("the supervisor did not report: %w", err)
	}
	return cmd, nil
}

// supervise is the minimal supervisor: argv is a count and a command; it
// starts that many copies of the command, reports on file descriptor 3,
// forwards SIGTERM to them and exits once they have.
func supervise(argv []string) int {
	k, err := strconv.Atoi(argv[0])
	if err != nil || k < 1 || len(argv) < 2 {
		fmt.Fprintln(os.Stderr, "supervise: COUNT COMMAND [ARG...]")
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	cmds := make([]*exec.Cmd, k)
	for i := range cmds {
		cmds[i] = exec.Command(argv[1], argv[2:]...)
		if err := cmds[i].Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			for _, c := range cmds[:i] {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
			return 1
		}
	}
	report := os.NewFile(3, "report")
	_, _ = report.Write([]byte{1})
	_ = report.Close()
	var wg sync.WaitGroup
	for _, c := range cmds {
		wg.Go(func() { _ = c.Wait() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-sigs:
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		<-done
	case <-done:
	}
	return 0
}

// StopDirect sends SIGTERM to each process and waits for it, par at a
// time, and returns the time it took.
func StopDirect(procs []*exec.Cmd, par int) time.Duration {
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	start := time.Now()
	for _, p := range procs {
		if p == nil || p.Process == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		})
	}
	wg.Wait()
	return time.Since(start)
}

// shims lists the PIDs of running processes of this benchmark's shim
// binary.
func (b *bench) shims() []int { return pidsOf(b.shim) }

// pidsOf lists the PIDs whose executable is exe.
func pidsOf(exe string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && target == exe {
			out = append(out, pid)
		}
	}
	return out
}

// rollup returns a process's Pss and Rss in KiB from smaps_rollup.
func rollup(pid int) (pss, rss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "Pss:":
			pss = v
		case "Rss:":
			rss = v
		}
	}
	return pss, rss
}

// memory prints the shims' and serve's memory, total and per component.
func (b *bench) memory(n int) {
	var pss, rss int64
	pids := b.shims()
	for _, pid := range pids {
		p, r := rollup(pid)
		pss, rss = pss+p, rss+r
	}
	var spss, srss int64
	for _, pid := range pidsOf(b.flowctl) {
		// Every flowctl process left running is the pipeline's serve.
		p, r := rollup(pid)
		spss, srss = spss+p, srss+r
	}
	fmt.Printf("   shims           %d running: PSS %.1f MiB (%.2f MiB each), RSS %.1f MiB (%.2f MiB each)\n", len(pids), mib(pss), mib(pss)/float64(max(len(pids), 1)), mib(rss), mib(rss)/float64(max(len(pids), 1)))
	fmt.Printf("   serve           PSS %.1f MiB, RSS %.1f MiB (%.3f MiB per component)\n", mib(spss), mib(srss), mib(spss)/float64(n))
	fmt.Printf("   per component   %.2f MiB PSS (shim + share of serve)\n", (mib(pss)+mib(spss))/float64(n))
}

// follow runs `flowctl logs -f --tail 0 -o json` for b.logsFor and
// reports the lines it received, the lines it missed (gaps in a
// component's numbering), its open files at the end, and its CPU.
func (b *bench) follow(dir string, n int) error {
	cmd := exec.Command(b.flowctl, "logs", "-f", "--tail", "0", "-o", "json")
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	type span struct{ first, last, count int }
	seen := map[string]*span{}
	lines := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l struct {
				Component string `json:"component"`
				Line      string `json:"line"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			var i int
			if _, err := fmt.Sscanf(l.Line, "line %d", &i); err != nil {
				continue
			}
			lines++
			sp := seen[l.Component]
			if sp == nil {
				sp = &span{first: i, last: i}
				seen[l.Component] = sp
			}
			sp.first, sp.last, sp.count = min(sp.first, i), max(sp.last, i), sp.count+1
		}
	}()
	time.Sleep(b.logsFor)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid))
	cpu := cpuOf([]int{cmd.Process.Pid})
	_ = cmd.Process.Signal(syscall.SIGINT)
	<-done
	_ = cmd.Wait()
	missed := 0
	for _, sp := range seen {
		missed += sp.last - sp.first + 1 - sp.count
	}
	fmt.Printf("   logs -f         %d components followed for %s: %d lines (%.0f/s), %d missed, %d open files, CPU %.2f s\n",
		len(seen), b.logsFor, lines, float64(lines)/b.logsFor.Seconds(), missed, len(fds), cpu)
	return nil
}

// crashes kills b.crash components at once (SIGKILL to the component
// process) and times each until its shim has started a new instance: the
// run record the process executor keeps names a new instance whose process
// is alive. The records are read every 10 ms.
func (b *bench) crashes(dir string, n int) error {
	recs, err := runRecords(dir)
	if err != nil {
		return err
	}
	if len(recs) < b.crash {
		return fmt.Errorf("crash: %d run records, want %d", len(recs), b.crash)
	}
	victims := recs[:b.crash]
	killed := time.Now()
	for _, r := range victims {
		_ = syscall.Kill(r.Child.PID, syscall.SIGKILL)
	}
	back := map[string]time.Duration{}
	deadline := killed.Add(2 * time.Minute)
	for len(back) < len(victims) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		now, err := runRecords(dir)
		if err != nil {
			continue
		}
		seen := time.Since(killed)
		by := map[string]runRecord{}
		for _, r := range now {
			by[r.Address] = r
		}
		for _, v := range victims {
			if _, ok := back[v.Address]; ok {
				continue
			}
			if c := by[v.Address]; c.InstanceID != "" && c.InstanceID != v.InstanceID && c.ExitCode == nil && syscall.Kill(c.Child.PID, 0) == nil {
				back[v.Address] = seen
			}
		}
	}
	var ds []time.Duration
	for _, d := range back {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	if len(ds) < len(victims) {
		fmt.Printf("   crash           only %d of %d running again within 2 min\n", len(ds), len(victims))
		return nil
	}
	p := func(q float64) float64 { return ds[min(len(ds)-1, int(q*float64(len(ds))))].Seconds() }
	fmt.Printf("   crash→running   %d of %d killed: p50 %.3f s, p99 %.3f s, max %.3f s\n", len(victims), n, p(0.5), p(0.99), ds[len(ds)-1].Seconds())
	return nil
}

// runRecord is what this benchmark reads of the process executor's run
// record of a component.
type runRecord struct {
	Address    string `json:"address"`
	InstanceID string `json:"instance_id"`
	ExitCode   *int   `json:"exit_code"`
	Child      struct {
		PID int `json:"pid"`
	} `json:"child"`
}

// runRecords reads the run records of the pipeline in dir, by address.
func runRecords(dir string) ([]runRecord, error) {
	paths, err := filepath.Glob(filepath.Join(dir, ".flowctl", "run", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []runRecord
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // replaced meanwhile
		}
		var r runRecord
		if json.Unmarshal(b, &r) == nil && r.Address != "" {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b runRecord) int { return strings.Compare(a.Address, b.Address) })
	return out, nil
}

// cpuOf is the CPU time (user and system, seconds) the processes pids used.
func cpuOf(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(f[11], 10, 64) // field 14, utime
		k, _ := strconv.ParseInt(f[12], 10, 64) // field 15, stime
		ticks += u + k
	}
	return float64(ticks) / 100 // USER_HZ
}

// load is the machine's load average.
func load() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}
