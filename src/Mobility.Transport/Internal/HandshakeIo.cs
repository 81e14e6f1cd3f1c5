using System.Buffers;
using System.IO.Pipelines;
using Mobility.Protocol.Transport;

namespace Mobility.Transport.Internal;

internal static class HandshakeIo
{
    /// <summary>
    /// Reads one handshake message. Throws <see cref="Protocol.MalformedMessageException"/> for bytes
    /// that are not one, <see cref="EndOfStreamException"/> when the flow ends first.
    /// </summary>
    public static async ValueTask<HandshakeMessage> ReadAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (TryParse(buffer, out var message, out var consumed))
            {
                reader.AdvanceTo(consumed);
                return message!;
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                throw new EndOfStreamException(buffer.Length == 0
                    ? "The peer closed the flow without answering."
                    : $"The peer closed the flow after {buffer.Length} bytes of an incomplete message.");
            }
        }
    }

    private static bool TryParse(ReadOnlySequence<byte> buffer, out HandshakeMessage? message, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(buffer);
        var ok = HandshakeMessage.TryRead(ref reader, out message);
        consumed = reader.Position;
        return ok;
    }

    /// <summary>Writes a Reject, then lets the peer read it before the flow closes (reads and drops its bytes for a short while).</summary>
    public static async Task RejectAsync(Flows.IFlow flow, PipeReader reader, RejectReason reason, TimeProvider time)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500), time);
            await flow.Stream.WriteAsync(new HandshakeReject(reason).ToArray(), cts.Token).ConfigureAwait(false);
            while (true)
            {
                var result = await reader.ReadAsync(cts.Token).ConfigureAwait(false);
                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            // The peer went away or kept talking; we close either way.
        }
    }
}
