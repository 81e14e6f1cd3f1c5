using System.IO.Pipelines;
using Mobility.Protocol;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;
using Mobility.Transport.Flows;
using Mobility.Transport.Internal;

namespace Mobility.Transport;

/// <summary>
/// What the call back (<c>MobileConnection.CallBack.cs</c>) and connection reversal (<c>MobileConnection.Reverse.cs</c>)
/// share, both ends: the server dials a flow to its client's listener, sends a sealed <see cref="ServerDialRequest"/>
/// (a CallBack or a Reverse) and accepts the client's answer on that flow (a Resume or a Join) as any other; the client's
/// listener hands the request to the connection, which checks it (here: the session's GUIDs, token and MAC; on the loop:
/// the rest, each kind its own) before it answers.
/// </summary>
public sealed partial class MobileConnection
{
    /// <summary>
    /// Server: one flow of a call back or a reversal. <paramref name="dial"/> opens it (a first flight: the request goes
    /// in the SYN where it can), <paramref name="message"/> (the sealed CallBack or Reverse) is written on it, and the
    /// client's answer is read and accepted as any Resume (<paramref name="standby"/> false) or Join (true) of this
    /// connection. Returns the answer once the connection accepted it (the flow is the connection's, <paramref name="done"/>
    /// is cancelled so that the other tries end); else null, the flow closed and the reason handed to
    /// <paramref name="failed"/> (none when <paramref name="done"/> was cancelled: another try was answered, or the end).
    /// </summary>
    /// <param name="notNeeded">Asked once the flow is open, before anything is sent: why it is no longer needed, or null.</param>
    private async Task<ResumeRequest?> DialAndAcceptAnswerAsync(Func<CancellationToken, ValueTask<IFlow>> dial, byte[] message, bool standby,
        Func<string?>? notNeeded, Action<string> failed, CancellationTokenSource done, CancellationToken ct)
    {
        var kind = standby ? "Join" : "Resume";
        IFlow? flow = null;
        var buffers = new FlowReadBuffers(bulk: false);
        PipeReader? reader = null;
        var handedOver = false;
        try
        {
            flow = await dial(ct).ConfigureAwait(false);
            if (notNeeded?.Invoke() is { } why)
            {
                failed(why);
                return null;
            }

            await flow.Stream.WriteAsync(message, ct).ConfigureAwait(false);
            reader = buffers.CreateReader(flow.Stream);
            var answer = await HandshakeIo.ReadAsync(reader, ct).ConfigureAwait(false);
            if (answer is not ResumeRequest request || request.Standby != standby
                || request.ClientGuid != ClientGuid || request.ServerGuid != ServerGuid || request.Token != Token)
            {
                failed($"answered with {answer.Type}, not a {kind} of this connection");
                return null;
            }

            var refused = await TryAcceptResumeAsync(flow, reader, request).ConfigureAwait(false);
            if (refused is { } reason)
            {
                failed($"the client's {kind} {request.Counter} was refused: {reason}");
                return null;
            }

            handedOver = true;
            buffers.StartBulk();
            await done.CancelAsync().ConfigureAwait(false);
            return request;
        }
        catch (OperationCanceledException)
        {
            if (!done.IsCancellationRequested)
            {
                failed(notNeeded?.Invoke() ?? "no answer in time");
            }
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or MalformedMessageException
                                      or EndOfStreamException or InvalidOperationException)
        {
            failed(e.Message);
        }
        finally
        {
            if (!handedOver)
            {
                if (reader is not null)
                {
                    await reader.CompleteAsync().ConfigureAwait(false);
                }

                flow?.Abort();
            }
        }

        return null;
    }

    /// <summary>
    /// Client: a CallBack or a Reverse for this connection arrived on <paramref name="flow"/> (accepted by this host's
    /// listener). Its GUIDs and token are checked and its MAC computed here, the rest on the loop; the loop's answer
    /// (true: the connection goes on on the flow), or false at once, counted in <paramref name="dropped"/> when it names
    /// another session (the caller closes the flow; nothing was sent on it).
    /// </summary>
    private Task<bool> OfferToLoopAsync<TRequest>(IFlow flow, PipeReader reader, TRequest request, ref int dropped)
        where TRequest : ServerDialRequest
    {
        if (!_isClient || request.ClientGuid != ClientGuid || request.ServerGuid != ServerGuid || request.Token != Token)
        {
            Interlocked.Increment(ref dropped);
            return Task.FromResult(false);
        }

        var offer = new ServerDialOffered<TRequest>(flow, reader, request, request.VerifyMac(_resumeKey));
        return Post(offer) ? offer.Answer.Task : Task.FromResult(false);
    }

    /// <summary>
    /// Client, on the loop: the checks a CallBack and a Reverse share, after each kind's own switch and before its own
    /// checks: the MAC, a counter above <paramref name="last"/> (the last of that kind acted on; anything else is a
    /// replay), the connection alive. Why the offer is dropped, or null.
    /// </summary>
    private string? ServerDialRefusal<TRequest>(ServerDialOffered<TRequest> offer, ulong last)
        where TRequest : ServerDialRequest
        => !offer.MacValid ? "bad MAC"
            : offer.Request.Counter <= last ? $"counter {offer.Request.Counter} not above {last} (a replay)"
            : _failure is not null || _completed ? "the connection ended"
            : null;
}
