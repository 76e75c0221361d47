package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hushnet/hush/relay"
)

func TestPromMetrics(t *testing.T) {
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
	m.BlobsStored(3, 5<<20, 4<<20, 15<<20)
	m.BlobPut()
	m.BlobPut()
	m.BlobRefused(relay.BlobReasonIPQuota)
	m.BlobRefused(relay.BlobReasonPeerQuota)
	m.BlobRefused(relay.BlobReasonFull)
	m.BlobUploaded(1 << 20)
	m.BlobUploaded(100)
	m.BlobCompleted()
	m.BlobRead(1 << 20)
	m.BlobRead(5)
	m.BlobDone()
	m.BlobDeleted(relay.BlobReasonReceipts)
	m.BlobDeleted(relay.BlobReasonTTL)
	m.BlobDeleted(relay.BlobReasonHashMismatch)
	m.LinkRecords(7)
	m.LinkPut()
	m.LinkPut()
	m.LinkGet(true)
	m.LinkGet(false)
	m.LinkGet(true)
	m.LinkDeleted(relay.LinkReasonOwner)
	m.LinkDeleted(relay.LinkReasonTTL)
	m.LinkRefused(relay.LinkReasonDenied)
	m.LinkRefused(relay.LinkReasonIPQuota)
	m.LinkRefused(relay.LinkReasonRateLimited)
	m.LinkRefused(relay.LinkReasonTooLarge)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			v := mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
			for _, l := range mt.GetLabel() {
				if l.GetName() != "reason" && l.GetName() != "result" {
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
		"hush_relay_blobs":                        3,
		"hush_relay_blob_bytes":                   5 << 20,
		"hush_relay_blob_bytes_held":              4 << 20,
		"hush_relay_blob_bytes_free":              15 << 20,
		"hush_relay_blob_puts_total":              2,
		"hush_relay_blob_puts_refused_total":      3,
		"hush_relay_blob_bytes_uploaded_total":    1<<20 + 100,
		"hush_relay_blobs_completed_total":        1,
		"hush_relay_blob_reads_total":             2,
		"hush_relay_blob_bytes_served_total":      1<<20 + 5,
		"hush_relay_blob_receipts_total":          1,
		"hush_relay_blobs_deleted_total":          3,
		"hush_relay_link_records":                 7,
		"hush_relay_link_puts_total":              2,
		"hush_relay_link_gets_total":              3,
		"hush_relay_link_records_deleted_total":   2,
		"hush_relay_link_requests_refused_total":  4,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
}
