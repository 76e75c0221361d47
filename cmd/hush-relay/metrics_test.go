package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hushnet/hush/relay"
)

func TestPromMetricsGroupStore(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newPromMetrics(reg)
	m.TopicFiled(100)
	m.TopicFiled(50)
	m.TopicDropped(relay.CodeQuota)
	m.WatchedTopics(3)
	m.TopicDropped(relay.CodeRateLimited)
	m.CreateRefused(relay.CodeQuota)
	m.CreateRefused(relay.CodeRateLimited)
	m.FrameRefused()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			v := mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
			for _, l := range mt.GetLabel() {
				if l.GetName() != "reason" {
					t.Fatalf("%s has label %s", f.GetName(), l.GetName())
				}
			}
			got[f.GetName()] += v
		}
	}
	want := map[string]float64{
		"hush_relay_topic_messages_filed_total":   2,
		"hush_relay_topic_bytes_filed_total":      150,
		"hush_relay_topic_messages_dropped_total": 2,
		"hush_relay_watched_topics":               3,
		"hush_relay_creates_refused_total":        2,
		"hush_relay_frames_refused_total":         1,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
}
