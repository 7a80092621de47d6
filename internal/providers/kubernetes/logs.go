package kubernetes

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowctl/flowctl/internal/providers"
)

// Logs implements providers.Provider through the pods' log endpoint, for
// every pod of the component at once, merged line by line as they come.
// Kubernetes keeps one stream per container: with Timestamps each line is
// "<time, RFC 3339 ns> stdout <text>". Follow streams until every pod's
// log ends, ctx ends or the reader is closed.
func (p *Provider) Logs(ctx context.Context, h providers.Handle, opts providers.LogOptions) (io.ReadCloser, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return nil, err
	}
	c, err := p.client(hd.cluster())
	if err != nil {
		return nil, err
	}
	pods, err := p.pods(ctx, c, hd)
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", hd.Address, err)
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("logs of %s: it has no pod in namespace %s", hd.Address, hd.Namespace)
	}
	plo := &corev1.PodLogOptions{Container: containerName, Follow: opts.Follow, Timestamps: true}
	if opts.Tail > 0 {
		n := int64(opts.Tail)
		plo.TailLines = &n
	}
	if !opts.Since.IsZero() {
		t := metav1.NewTime(opts.Since)
		plo.SinceTime = &t
	}
	var streams []io.ReadCloser
	for _, pod := range pods {
		rc, err := c.CoreV1().Pods(hd.Namespace).GetLogs(pod.Name, plo).Stream(ctx)
		if err != nil {
			for _, s := range streams {
				s.Close()
			}
			return nil, fmt.Errorf("logs of %s: pod %s: %w", hd.Address, pod.Name, p.explain(hd.cluster(), "get", "pods/log", hd.Namespace, err))
		}
		streams = append(streams, rc)
	}
	pr, pw := io.Pipe()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, rc := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer rc.Close()
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := formatLine(sc.Text(), opts.Timestamps)
				mu.Lock()
				_, err := io.WriteString(pw, line+"\n")
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		pw.Close()
	}()
	return &logReader{PipeReader: pr, streams: streams}, nil
}

// formatLine turns Kubernetes' "<time> <text>" into flowctl's form.
func formatLine(s string, timestamps bool) string {
	ts, text, ok := strings.Cut(s, " ")
	if !ok {
		ts, text = s, ""
	}
	if !timestamps {
		return text
	}
	return ts + " stdout " + text
}

// logReader closes the pods' streams with the pipe, so that a follow ends.
type logReader struct {
	*io.PipeReader
	streams []io.ReadCloser
}

func (r *logReader) Close() error {
	for _, s := range r.streams {
		s.Close()
	}
	return r.PipeReader.Close()
}
