package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hushnet/hush/relay"
)

// promMetrics implements relay.Metrics with Prometheus collectors. No
// label names a mailbox or a peer.
type promMetrics struct {
	accepted, acked, delivered, expired, bytesIn prometheus.Counter
	rejected                                     *prometheus.CounterVec
	messages, bytes, mailboxes, subscribers      prometheus.Gauge
	filed, filedBytes, pushed                    prometheus.Counter
	dropped                                      *prometheus.CounterVec
	topics                                       prometheus.Gauge
	watchRefused                                 prometheus.Counter
	createRefused                                *prometheus.CounterVec
	frameRefused                                 prometheus.Counter
	wakeCalls                                    *prometheus.CounterVec
	wakes                                        prometheus.Counter

	blobs, blobBytes, blobHeld, blobFree prometheus.Gauge
	blobPuts, blobCompleted, blobDones   prometheus.Counter
	blobReads, blobUp, blobServed        prometheus.Counter
	blobRefused, blobDeleted             *prometheus.CounterVec

	links                              prometheus.Gauge
	linkPuts                           prometheus.Counter
	linkGets, linkDeleted, linkRefused *prometheus.CounterVec
}

func newPromMetrics(reg prometheus.Registerer) *promMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "hush_relay", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "hush_relay", Name: name, Help: help})
	}
	m := &promMetrics{
		accepted:  c("deposits_accepted_total", "Envelopes stored."),
		bytesIn:   c("deposit_bytes_total", "Envelope bytes stored."),
		acked:     c("acks_total", "Deliveries acknowledged by owners: stored envelopes deleted and group messages pushed unstored."),
		delivered: c("deliveries_total", "Envelopes sent to owners (redeliveries included)."),
		expired:   c("expired_total", "Envelopes deleted by the TTL."),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hush_relay",
			Name: "deposits_rejected_total", Help: "Deposits refused, by reason."}, []string{"reason"}),
		messages:    g("stored_messages", "Envelopes stored."),
		bytes:       g("stored_bytes", "Envelope bytes stored."),
		mailboxes:   g("mailboxes", "Mailboxes."),
		subscribers: g("subscribers", "Open owner subscriptions."),
		filed:       c("topic_messages_filed_total", "Group topic messages filed into a watching mailbox (one per mailbox)."),
		filedBytes:  c("topic_bytes_filed_total", "Group topic message bytes filed into watching mailboxes."),
		pushed:      c("topic_messages_pushed_total", "Group topic messages pushed to a watching owner that was online, not stored (one per mailbox)."),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hush_relay",
			Name: "topic_messages_dropped_total", Help: "Group topic messages not filed into a watching mailbox, by reason."}, []string{"reason"}),
		topics:       g("watched_topics", "Distinct group topics watched."),
		watchRefused: c("watches_refused_total", "Watches refused because one network's mailboxes watch as many topics as it may (max_topics_per_ip)."),
		createRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hush_relay",
			Name: "creates_refused_total", Help: "Mailbox creations refused by the open mode's limits, by reason (quota: max_mailboxes_per_peer or max_mailboxes_per_ip; rate_limited: create_ip_per_hour)."}, []string{"reason"}),
		frameRefused: c("frames_refused_total", "Streams reset because the request frame byte budget (max_frame_bytes, max_frame_bytes_per_ip) stayed full."),
		wakeCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hush_relay",
			Name: "wake_calls_total", Help: "Calls to the push bridge, by result (ok, failed)."}, []string{"result"}),
		wakes: c("wakes_requested_total", "Mailbox owners the push bridge was asked to wake."),

		blobs:         g("blobs", "Live blobs in the blob store (put and not deleted, uploaded or not)."),
		blobBytes:     g("blob_bytes", "Bytes of live blobs as the blob limits count them (each its whole size from its put, at least 64 KiB)."),
		blobHeld:      g("blob_bytes_held", "Bytes of the blob files (acknowledged writes)."),
		blobFree:      g("blob_bytes_free", "Bytes blob_store_bytes still has room for."),
		blobPuts:      c("blob_puts_total", "Puts that reserved a new blob."),
		blobCompleted: c("blobs_completed_total", "Blobs whose last write matched their hash."),
		blobDones:     c("blob_receipts_total", "Receipt tokens presented for the first time (done)."),
		blobReads:     c("blob_reads_total", "Blob reads answered with data."),
		blobUp:        c("blob_bytes_uploaded_total", "Blob bytes written and acknowledged."),
		blobServed:    c("blob_bytes_served_total", "Blob bytes sent in answers to reads."),
		blobRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hush_relay",
			Name: "blob_puts_refused_total", Help: "Blob puts refused by a limit, by reason (peer_quota, ip_quota, too_large, full)."}, []string{"reason"}),
		blobDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hush_relay",
			Name: "blobs_deleted_total", Help: "Blobs deleted, by reason (receipts, ttl, hash_mismatch, lost)."}, []string{"reason"}),

		links:    g("link_records", "Live link records in the link store."),
		linkPuts: c("link_puts_total", "Link record puts stored (new records and replacements by their owners)."),
		linkGets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hush_relay",
			Name: "link_gets_total", Help: "Link record gets, by result (found, unknown)."}, []string{"result"}),
		linkDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hush_relay",
			Name: "link_records_deleted_total", Help: "Link records deleted, by reason (owner, ttl)."}, []string{"reason"}),
		linkRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hush_relay",
			Name: "link_requests_refused_total", Help: "Link requests refused, by reason (denied, too_large, peer_quota, ip_quota, full, rate_limited)."}, []string{"reason"}),
	}
	reg.MustRegister(m.accepted, m.bytesIn, m.acked, m.delivered, m.expired, m.rejected,
		m.messages, m.bytes, m.mailboxes, m.subscribers, m.filed, m.filedBytes, m.pushed, m.dropped, m.topics, m.watchRefused, m.createRefused, m.frameRefused, m.wakeCalls, m.wakes,
		m.blobs, m.blobBytes, m.blobHeld, m.blobFree, m.blobPuts, m.blobCompleted, m.blobDones, m.blobReads, m.blobUp, m.blobServed, m.blobRefused, m.blobDeleted,
		m.links, m.linkPuts, m.linkGets, m.linkDeleted, m.linkRefused)
	return m
}

func (m *promMetrics) DepositAccepted(size int) {
	m.accepted.Inc()
	m.bytesIn.Add(float64(size))
}
func (m *promMetrics) DepositRejected(code relay.ErrorCode) {
	m.rejected.WithLabelValues(code.String()).Inc()
}
func (m *promMetrics) Delivered(n int) { m.delivered.Add(float64(n)) }
func (m *promMetrics) Acked(n int)     { m.acked.Add(float64(n)) }
func (m *promMetrics) Expired(n int)   { m.expired.Add(float64(n)) }
func (m *promMetrics) Stored(messages, bytes int64) {
	m.messages.Set(float64(messages))
	m.bytes.Set(float64(bytes))
}
func (m *promMetrics) Mailboxes(n int64)   { m.mailboxes.Set(float64(n)) }
func (m *promMetrics) Subscribers(n int64) { m.subscribers.Set(float64(n)) }
func (m *promMetrics) TopicFiled(size int) {
	m.filed.Inc()
	m.filedBytes.Add(float64(size))
}
func (m *promMetrics) TopicPushed(int) { m.pushed.Inc() }
func (m *promMetrics) TopicDropped(code relay.ErrorCode) {
	m.dropped.WithLabelValues(code.String()).Inc()
}
func (m *promMetrics) WatchedTopics(n int64) { m.topics.Set(float64(n)) }
func (m *promMetrics) WatchRefused()         { m.watchRefused.Inc() }
func (m *promMetrics) CreateRefused(code relay.ErrorCode) {
	m.createRefused.WithLabelValues(code.String()).Inc()
}
func (m *promMetrics) FrameRefused() { m.frameRefused.Inc() }
func (m *promMetrics) WakeCall(ok bool, n int) {
	result := "failed"
	if ok {
		result = "ok"
	}
	m.wakeCalls.WithLabelValues(result).Inc()
	m.wakes.Add(float64(n))
}

func (m *promMetrics) BlobsStored(blobs, bytes, held, free int64) {
	m.blobs.Set(float64(blobs))
	m.blobBytes.Set(float64(bytes))
	m.blobHeld.Set(float64(held))
	m.blobFree.Set(float64(free))
}
func (m *promMetrics) BlobPut()                  { m.blobPuts.Inc() }
func (m *promMetrics) BlobRefused(reason string) { m.blobRefused.WithLabelValues(reason).Inc() }
func (m *promMetrics) BlobUploaded(n int)        { m.blobUp.Add(float64(n)) }
func (m *promMetrics) BlobCompleted()            { m.blobCompleted.Inc() }
func (m *promMetrics) BlobRead(n int) {
	m.blobReads.Inc()
	m.blobServed.Add(float64(n))
}
func (m *promMetrics) BlobDone()                 { m.blobDones.Inc() }
func (m *promMetrics) BlobDeleted(reason string) { m.blobDeleted.WithLabelValues(reason).Inc() }

func (m *promMetrics) LinkRecords(n int64) { m.links.Set(float64(n)) }
func (m *promMetrics) LinkPut()            { m.linkPuts.Inc() }
func (m *promMetrics) LinkGet(found bool) {
	result := "unknown"
	if found {
		result = "found"
	}
	m.linkGets.WithLabelValues(result).Inc()
}
func (m *promMetrics) LinkDeleted(reason string) { m.linkDeleted.WithLabelValues(reason).Inc() }
func (m *promMetrics) LinkRefused(reason string) { m.linkRefused.WithLabelValues(reason).Inc() }

var _ relay.Metrics = (*promMetrics)(nil)
