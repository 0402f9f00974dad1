// A whole turn through the Go client that openapi-generator generates from
// the served document (tests/contract/run.sh generates it as the package
// lettabridge/letta and builds this program against it, with Debian's Go
// and nothing from the network): a message with wait=completion that stops
// at a tool approval, the approval with wait=completion to the turn's end,
// and the turn's events read back from GET /events. Uses the generated
// client's typed calls and models (for the stream, its request).
// Usage: turn BASE_URL CLIENT_TOKEN RUNTIME_ID
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"lettabridge/letta"
)

func check(ok bool, format string, args ...interface{}) {
	if !ok {
		fmt.Fprintf(os.Stderr, "go client: "+format+"\n", args...)
		os.Exit(1)
	}
}

func main() {
	base, token, runtime := os.Args[1], os.Args[2], os.Args[3]
	cfg := letta.NewConfiguration()
	cfg.Servers = letta.ServerConfigurations{{URL: base}}
	client := letta.NewAPIClient(cfg)
	ctx := context.WithValue(context.Background(), letta.ContextAccessToken, token)
	scope := *letta.NewRuntimeScope("agent-contract", "conv-contract")

	text := "please create the file"
	message := *letta.NewInputMessage(letta.StringAsMessageContent(&text), letta.USER)
	payload := letta.NewCreateMessagePayload("create_message", []letta.InputMessage{message})
	input := *letta.NewInputCommand(letta.CreateMessagePayloadAsInputPayload(payload), scope)
	replied, res, err := client.CommandsAPI.PostRuntimeInput(ctx, runtime).InputCommand(input).Wait("completion").TimeoutMs(5000).Execute()
	check(err == nil && res.StatusCode == 200, "POST /runtimes/{id}/input?wait=completion: %v %v", err, res)
	paused := replied.TurnResult
	check(paused != nil, "the answer is a TurnResult: %+v", replied)
	check(paused.StopReason == "requires_approval", "the turn stops at the approval: %s", paused.StopReason)
	approval := paused.Approval
	check(approval != nil && approval.GetToolName() == "Bash" && strings.HasPrefix(approval.RequestId, "perm-"), "the pending approval: %+v", approval)

	answer := letta.NewApprovalResponse(approval.RequestId)
	answer.SetDecision(letta.AllowDecisionAsApprovalDecision(letta.NewAllowDecision("allow")))
	command := *letta.NewApprovalCommand(*answer, scope)
	replied, res, err = client.CommandsAPI.PostRuntimeApproval(ctx, runtime).ApprovalCommand(command).Wait("completion").TimeoutMs(5000).Execute()
	check(err == nil && res.StatusCode == 200, "POST /runtimes/{id}/approval?wait=completion: %v %v", err, res)
	finished := replied.TurnResult
	check(finished != nil, "the answer is a TurnResult: %+v", replied)
	check(finished.StopReason != "requires_approval" && finished.StopReason != "error", "the turn goes to its end: %s", finished.StopReason)
	check(finished.TurnFinished != nil, "the finished turn carries its turn_finished event")

	// The stream ends by itself (LETTA_BRIDGE_MAX_STREAM_DURATION in run.sh).
	// The document describes each event; the generated call cannot decode
	// SSE text into one (its error says so) and leaves the body readable.
	_, res, err = client.EventsAPI.GetEvents(ctx).Runtime(runtime).LastEventId(paused.Cursor).Execute()
	check(res != nil && res.StatusCode == 200, "GET /events: %v %v", err, res)
	stream, err := io.ReadAll(res.Body)
	check(err == nil, "GET /events: %v", err)
	ids, types := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(string(stream), "\n") {
		if strings.HasPrefix(line, "id: ") {
			ids[strings.TrimPrefix(line, "id: ")] = true
		} else if strings.HasPrefix(line, "event: ") {
			types[strings.TrimPrefix(line, "event: ")] = true
		}
	}
	for _, id := range append(paused.EventIds, finished.EventIds...) {
		check(ids[id], "event %s of the turn is in the stream", id)
	}
	check(types["control_request"] && types["turn_finished"], "the approval request and the end are streamed: %v", types)
	fmt.Printf("go client: a whole turn (%d events, stop_reason %s, text %q)\n", len(ids), finished.StopReason, finished.Text)
}
