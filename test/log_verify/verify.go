// Command verify checks fp_attribution's receipt logs from the outside,
// sharing no code with the extension: it reads a JSON export (made by
// run.sh with psql) and, for each advertiser's log, checks with
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog that
//
//   - every checkpoint note is signed by the log's verifier key and names
//     the log's origin;
//   - log indexes are 0..n-1, each names a receipt that exists, and every
//     receipt of the advertiser is in the log;
//   - the tree recomputed from the receipts' receipt_hash values has the
//     root of every checkpoint at its size;
//   - every receipt's c2sp.org/tlog-proof@v1 proof verifies against its
//     checkpoint, for that receipt's receipt_hash at its index;
//   - consecutive checkpoints, and each checkpoint an auditor saved
//     earlier, are consistent with the latest (consistency proofs from
//     the database, checked against the saved roots).
//
// It prints one line per failure and "N passed, N failed" last; the exit
// status is 1 when anything failed.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type receipt struct {
	ID   string `json:"receipt_id"`
	Hash string `json:"receipt_hash"` // base64
}

type entry struct {
	Index     int64  `json:"log_index"`
	ReceiptID string `json:"receipt_id"`
}

type consistency struct {
	Old   int64    `json:"old_size"`
	New   int64    `json:"new_size"`
	Proof []string `json:"proof"`
}

type logExport struct {
	Advertiser  string        `json:"advertiser_id"`
	VerifierKey string        `json:"verifier_key"`
	Receipts    []receipt     `json:"receipts"`
	Entries     []entry       `json:"entries"`
	Checkpoints []string      `json:"checkpoints"`
	Proofs      []string      `json:"proofs"`
	Consistency []consistency `json:"consistency"`
}

type export struct {
	Logs []logExport `json:"logs"`
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

var passed, failed int

func check(ok bool, format string, args ...interface{}) bool {
	if ok {
		passed++
	} else {
		failed++
		fmt.Printf("FAIL "+format+"\n", args...)
	}
	return ok
}

// openCheckpoint verifies a note's signature and parses its checkpoint body.
func openCheckpoint(text string, v note.Verifier) (checkpoint, error) {
	var c checkpoint
	n, err := note.Open([]byte(text), note.VerifierList(v))
	if err != nil {
		return c, err
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return c, fmt.Errorf("checkpoint body has fewer than three lines")
	}
	c.origin = lines[0]
	if c.size, err = strconv.ParseInt(lines[1], 10, 64); err != nil || c.size < 0 {
		return c, fmt.Errorf("bad tree size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return c, fmt.Errorf("bad root hash %q", lines[2])
	}
	copy(c.root[:], root)
	return c, nil
}

func decodeHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return h, fmt.Errorf("bad hash %q", s)
	}
	copy(h[:], b)
	return h, nil
}

// parseProof reads a c2sp.org/tlog-proof@v1 proof.
func parseProof(text string) (extra []byte, index int64, hashes []tlog.Hash, cp string, err error) {
	parts := strings.SplitN(text, "\n\n", 2)
	if len(parts) != 2 {
		return nil, 0, nil, "", fmt.Errorf("no empty line before the checkpoint")
	}
	cp = parts[1]
	lines := strings.Split(parts[0], "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return nil, 0, nil, "", fmt.Errorf("bad header %q", lines[0])
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		if extra, err = base64.StdEncoding.DecodeString(lines[0][6:]); err != nil {
			return nil, 0, nil, "", err
		}
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return nil, 0, nil, "", fmt.Errorf("no index line")
	}
	if index, err = strconv.ParseInt(lines[0][6:], 10, 64); err != nil {
		return nil, 0, nil, "", err
	}
	for _, l := range lines[1:] {
		h, err := decodeHash(l)
		if err != nil {
			return nil, 0, nil, "", err
		}
		hashes = append(hashes, h)
	}
	return extra, index, hashes, cp, nil
}

func verifyLog(l logExport, saved []string) {
	adv := l.Advertiser
	v, err := note.NewVerifier(l.VerifierKey)
	if !check(err == nil, "%s: verifier key: %v", adv, err) {
		return
	}
	origin := v.Name()

	// receipts and entries: contiguous indexes, each receipt logged once
	byID := map[string][]byte{}
	for _, r := range l.Receipts {
		h, err := base64.StdEncoding.DecodeString(r.Hash)
		check(err == nil, "%s: receipt %s: bad receipt_hash", adv, r.ID)
		byID[r.ID] = h
	}
	logged := map[string]bool{}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= int64(len(stored)) {
				return nil, fmt.Errorf("hash %d not stored", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	leaves := make([]tlog.Hash, len(l.Entries))
	for i, e := range l.Entries {
		check(e.Index == int64(i), "%s: log index %d where %d was due (gap or duplicate)", adv, e.Index, i)
		data, ok := byID[e.ReceiptID]
		check(ok, "%s: log index %d names receipt %s, which does not exist", adv, e.Index, e.ReceiptID)
		logged[e.ReceiptID] = true
		leaves[i] = tlog.RecordHash(data)
		hs, err := tlog.StoredHashesForRecordHash(int64(i), leaves[i], reader)
		if !check(err == nil, "%s: storing leaf %d: %v", adv, i, err) {
			return
		}
		stored = append(stored, hs...)
	}
	for _, r := range l.Receipts {
		check(logged[r.ID], "%s: receipt %s is not in the log", adv, r.ID)
	}

	// checkpoints: signed, for this origin, root = recomputed root
	var cps []checkpoint
	for _, text := range l.Checkpoints {
		c, err := openCheckpoint(text, v)
		if !check(err == nil, "%s: checkpoint does not verify: %v", adv, err) {
			continue
		}
		check(c.origin == origin, "%s: checkpoint origin %q is not %q", adv, c.origin, origin)
		if !check(c.size <= int64(len(leaves)), "%s: checkpoint of size %d, log of %d", adv, c.size, len(leaves)) {
			continue
		}
		root, err := tlog.TreeHash(c.size, reader)
		check(err == nil && root == c.root, "%s: recomputed root at size %d differs from the checkpoint's", adv, c.size)
		cps = append(cps, c)
	}

	// every receipt's inclusion proof
	for _, p := range l.Proofs {
		extra, index, hashes, cpText, err := parseProof(p)
		if !check(err == nil, "%s: proof does not parse: %v", adv, err) {
			continue
		}
		c, err := openCheckpoint(cpText, v)
		if !check(err == nil, "%s: proof of index %d: checkpoint: %v", adv, index, err) {
			continue
		}
		err = tlog.CheckRecord(hashes, c.size, c.root, index, tlog.RecordHash(extra))
		check(err == nil, "%s: inclusion proof of index %d: %v", adv, index, err)
		if index < int64(len(l.Entries)) {
			check(bytes.Equal(byID[l.Entries[index].ReceiptID], extra),
				"%s: proof of index %d is for another receipt_hash", adv, index)
		}
	}

	// consistency: each proof from the database, checked against the roots
	// of the checkpoints (and saved checkpoints) at both sizes
	roots := map[int64]tlog.Hash{}
	for _, c := range cps {
		roots[c.size] = c.root
	}
	for _, text := range saved {
		c, err := openCheckpoint(text, v)
		if err != nil || c.origin != origin {
			continue // another advertiser's
		}
		if r, ok := roots[c.size]; ok {
			check(r == c.root, "%s: saved checkpoint at size %d forks from the log's", adv, c.size)
		}
		if !check(c.size <= int64(len(leaves)), "%s: saved checkpoint of size %d, log of only %d", adv, c.size, len(leaves)) {
			continue
		}
		root, err := tlog.TreeHash(c.size, reader)
		check(err == nil && root == c.root, "%s: log does not extend the saved checkpoint of size %d", adv, c.size)
		roots[c.size] = c.root
	}
	for _, cp := range l.Consistency {
		oldRoot, ok1 := roots[cp.Old]
		newRoot, ok2 := roots[cp.New]
		if !check(ok1 && ok2, "%s: no checkpoint at size %d or %d", adv, cp.Old, cp.New) {
			continue
		}
		var proof tlog.TreeProof
		for _, s := range cp.Proof {
			h, err := decodeHash(s)
			check(err == nil, "%s: consistency proof: %v", adv, err)
			proof = append(proof, h)
		}
		if cp.Old == 0 {
			continue
		}
		err := tlog.CheckTree(proof, cp.New, newRoot, cp.Old, oldRoot)
		check(err == nil, "%s: checkpoints at sizes %d and %d are not consistent: %v", adv, cp.Old, cp.New, err)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: verify EXPORT.json [SAVED_CHECKPOINT...]")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var ex export
	if err := json.Unmarshal(data, &ex); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var saved []string
	for _, f := range os.Args[2:] {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		saved = append(saved, string(b))
	}
	for _, l := range ex.Logs {
		verifyLog(l, saved)
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
