package apitypes

import "time"

// Conversation is one entry of the conversation list (listConversations):
// a contact or a group, with its last message, its unread count and this
// device's settings for it.
type Conversation struct {
	Contact  string       `json:"contact,omitempty"` // the contact's name, for a 1:1 conversation
	Group    string       `json:"group,omitempty"`   // the group's ID, for a group
	Name     string       `json:"name"`              // the contact's or the group's name
	Last     *LastMessage `json:"last,omitempty"`    // none when the conversation is empty
	Unread   int          `json:"unread"`            // incoming messages not read yet
	Muted    bool         `json:"muted,omitempty"`
	Pinned   bool         `json:"pinned,omitempty"`
	Archived bool         `json:"archived,omitempty"`
	// Presence is a 1:1 contact's online status when known (as
	// Contact.Presence).
	Presence *Presence `json:"presence,omitempty"`
}

// LastMessage is what the conversation list shows of a conversation's
// last message.
type LastMessage struct {
	ID        string    `json:"id"`
	Direction string    `json:"direction"` // "in", "out" or "system"
	Sender    string    `json:"sender,omitempty"`
	Preview   string    `json:"preview"` // the text, cut at PreviewRunes runes; a file's name when there is no caption
	Time      time.Time `json:"time"`
	Deleted   bool      `json:"deleted,omitempty"`
}

// PreviewRunes is the length of LastMessage.Preview, in runes.
const PreviewRunes = 80

// ListConversationsParams are the params of listConversations.
type ListConversationsParams struct {
	Archived bool `json:"archived,omitempty"` // list the archived conversations instead
}

// SetConversationParams are the params of setConversation: a contact or
// a group, and the settings to change (absent: unchanged).
type SetConversationParams struct {
	Contact  string `json:"contact,omitempty"`
	Group    string `json:"group,omitempty"`
	Muted    *bool  `json:"muted,omitempty"`
	Pinned   *bool  `json:"pinned,omitempty"`
	Archived *bool  `json:"archived,omitempty"`
}

// MessageQuery is a page of a conversation (listMessages,
// listGroupMessages): the messages before and/or after a message ID,
// at most Limit of them (0: all), oldest first. Without Before, the
// page ends at the newest; without After, it starts as far back as
// Limit goes (the Limit messages nearest Before, or with only After,
// the Limit messages right after it).
type MessageQuery struct {
	Contact string `json:"contact,omitempty"`
	Group   string `json:"group,omitempty"`
	Before  string `json:"before,omitempty"`
	After   string `json:"after,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

// DeleteMessageParams are the params of deleteMessage.
type DeleteMessageParams struct {
	Contact string `json:"contact,omitempty"`
	Group   string `json:"group,omitempty"`
	ID      string `json:"id"`
	Local   bool   `json:"local,omitempty"` // delete on this device only; else recall it for everyone
	TxnID   string `json:"txnId,omitempty"` // a recall: as for send
}

// ConversationParams name one conversation: a contact or a group
// (clearConversation, markRead for groups).
type ConversationParams struct {
	Contact string `json:"contact,omitempty"`
	Group   string `json:"group,omitempty"`
}

// CreateGroupParams are the params of createGroup.
type CreateGroupParams struct {
	Name  string `json:"name"`
	TxnID string `json:"txnId,omitempty"` // a retry with the same ID returns the group created first
}
