using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Mobility.Protocol;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Relay;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Relay;

/// <summary>A relay refused a registration, a dial or an accept (docs/protocol.md, "Relay"), or spoke something else.</summary>
public sealed class RelayException : IOException
{
    public RelayException(RelayStatus status, string message) : base(message) => Status = status;

    public RelayException(string message, Exception? inner = null) : base(message, inner) => Status = null;

    /// <summary>The relay's answer; null when the relay did not answer with a result.</summary>
    public RelayStatus? Status { get; }
}

/// <summary>
/// Flows through a relay: a dial to a registered GUID (<see cref="DialAsync"/>) is a TCP connection to
/// the relay that, once the relay answers Ok, carries the host's bytes; nothing of the relay protocol
/// remains on it. The mobile TCP handshake on top authenticates both ends; the relay sees ciphertext.
/// </summary>
public static class RelayFlows
{
    /// <summary>Time a relay has to answer a dial (it waits up to 10 s for the host by default) or a registration step.</summary>
    public static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Opens a flow to <paramref name="target"/> through the relay at <paramref name="relay"/>.</summary>
    public static async ValueTask<IFlow> DialAsync(IPEndPoint relay, HostGuid target, IFlowFactory? flows = null, IPAddress? localAddress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(relay);
        var flow = await (flows ?? TcpFlowFactory.Instance).ConnectAsync(relay, localAddress, cancellationToken).ConfigureAwait(false);
        try
        {
            await flow.Stream.WriteAsync(new RelayDial(target).Encode(), cancellationToken).ConfigureAwait(false);
            await ExpectOkAsync(flow.Stream, $"dial of {target.ToShortString()} at {relay}", cancellationToken).ConfigureAwait(false);
            return new RelayedFlow(flow, relay);
        }
        catch
        {
            flow.Abort();
            throw;
        }
    }

    /// <summary>
    /// Reads exactly one Result (7 bytes, so not a byte of the spliced stream behind it) and throws
    /// <see cref="RelayException"/> unless it is Ok.
    /// </summary>
    internal static async Task ExpectOkAsync(Stream stream, string what, CancellationToken cancellationToken)
    {
        var bytes = new byte[new RelayResult(RelayStatus.Ok).Size];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(AnswerTimeout);
        try
        {
            await stream.ReadExactlyAsync(bytes, timeout.Token).ConfigureAwait(false);
        }
        catch (EndOfStreamException e)
        {
            throw new RelayException($"The relay closed the {what} without an answer.", e);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RelayException($"The relay did not answer the {what} in time.", e);
        }

        var message = Parse(bytes, what);
        if (message is not RelayResult result)
        {
            throw new RelayException($"The relay answered the {what} with a {message.Type}.");
        }

        if (result.Status != RelayStatus.Ok)
        {
            throw new RelayException(result.Status, $"The relay refused the {what}: {result.Status}.");
        }
    }

    private static RelayMessage Parse(byte[] bytes, string what)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        try
        {
            return RelayMessage.TryRead(ref reader, out var message) ? message : throw new RelayException($"The relay's answer to the {what} is incomplete.");
        }
        catch (MalformedMessageException e)
        {
            throw new RelayException($"The relay's answer to the {what} is not the relay protocol: {e.Message}", e);
        }
    }
}

/// <summary>
/// A host's registration at one relay, as a flow listener: <see cref="AcceptAsync"/> yields the data
/// connections the relay asked for (one per dial), which a <see cref="MobileListener"/> serves like
/// TCP flows. The control connection pings every <see cref="KeepAliveInterval"/>; when it closes,
/// <see cref="Closed"/> completes and <see cref="AcceptAsync"/> throws, and the owner registers again
/// (at this relay or another).
/// </summary>
public sealed class RelayFlowListener : IFlowListener
{
    /// <summary>Ping interval on the control connection: under NAT mapping lifetimes and the relay's idle timeout (75 s).</summary>
    public static readonly TimeSpan KeepAliveInterval = TimeSpan.FromSeconds(25);

    /// <summary>Data connections opened and not yet accepted; further splice requests wait for room (the relay times them out).</summary>
    private const int Backlog = 64;

    private readonly HostGuid _guid;
    private readonly IFlow _control;
    private readonly IFlowFactory _flows;
    private readonly PipeReader _reader;
    private readonly Channel<IFlow> _accepted = Channel.CreateBounded<IFlow>(Backlog);
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly TaskCompletionSource<Exception?> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loops = Task.CompletedTask;
    private int _disposed;

    private RelayFlowListener(HostGuid guid, IPEndPoint relay, IFlow control, IFlowFactory flows)
    {
        _guid = guid;
        LocalEndPoint = relay;
        _control = control;
        _flows = flows;
        _reader = PipeReader.Create(control.Stream, new StreamPipeReaderOptions(bufferSize: 256, leaveOpen: true));
    }

    /// <summary>The relay this listener is registered at.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>This host's end of the control connection (the address the registration left from); null once it is closed.</summary>
    public IPEndPoint? ControlEndPoint => _control.LocalEndPoint;

    /// <summary>Completes when the registration ends, with the reason (null after <see cref="DisposeAsync"/>).</summary>
    public Task<Exception?> Closed => _closed.Task;

    /// <summary>Connects to <paramref name="relay"/> and registers <paramref name="key"/>'s GUID; a refusal is a <see cref="RelayException"/> with the relay's status.</summary>
    public static async Task<RelayFlowListener> RegisterAsync(HostKey key, IPEndPoint relay, IFlowFactory? flows = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(relay);
        flows ??= TcpFlowFactory.Instance;
        var control = await flows.ConnectAsync(relay, null, cancellationToken).ConfigureAwait(false);
        var listener = new RelayFlowListener(key.Guid, relay, control, flows);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(RelayFlows.AnswerTimeout);
            await control.Stream.WriteAsync(RelayRegister.Instance.Encode(), timeout.Token).ConfigureAwait(false);
            if (await listener.ReadAsync(timeout.Token).ConfigureAwait(false) is not RelayChallenge challenge)
            {
                throw new RelayException($"The relay at {relay} did not send a challenge.");
            }

            // The proof names the endpoint this host dialled, so it is good at this relay only.
            var proof = RelayProof.Create(key, challenge.Nonce, relay);
            await control.Stream.WriteAsync(proof.Encode(), timeout.Token).ConfigureAwait(false);
            switch (await listener.ReadAsync(timeout.Token).ConfigureAwait(false))
            {
                case RelayResult { Status: RelayStatus.Ok }:
                    break;
                case RelayResult refused:
                    throw new RelayException(refused.Status, $"The relay at {relay} refused the registration: {refused.Status}.");
                default:
                    throw new RelayException($"The relay at {relay} did not answer the registration.");
            }
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
            throw new RelayException($"The relay at {relay} did not answer the registration in time.", e);
        }
        catch
        {
            await listener.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        listener._loops = Task.WhenAll(Task.Run(listener.ControlLoopAsync), Task.Run(listener.KeepAliveLoopAsync));
        return listener;
    }

    public async ValueTask<IFlow> AcceptAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _accepted.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException e)
        {
            throw new ObjectDisposedException($"The registration at the relay {LocalEndPoint} ended.", e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _closed.TrySetResult(null);
        await _stop.CancelAsync().ConfigureAwait(false);
        _control.Abort();
        await _loops.ConfigureAwait(false);
        await _reader.CompleteAsync().ConfigureAwait(false);
        _accepted.Writer.TryComplete();
        while (_accepted.Reader.TryRead(out var flow))
        {
            flow.Abort();
        }

        _stop.Dispose();
    }

    private async Task ControlLoopAsync()
    {
        Exception? reason = null;
        try
        {
            while (await ReadAsync(_stop.Token).ConfigureAwait(false) is { } message)
            {
                switch (message)
                {
                    case RelaySpliceRequest request:
                        _ = OpenDataConnectionAsync(request.SpliceId);
                        break;
                    case RelayPing ping:
                        await SendAsync(new RelayPong(ping.Token)).ConfigureAwait(false);
                        break;
                    case RelayPong:
                        break;
                    default:
                        throw new RelayException($"The relay sent a {message.Type} on the control connection.");
                }
            }

            reason = new RelayException($"The relay at {LocalEndPoint} closed the registration.");
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            reason = e;
        }
        finally
        {
            // The reason is in Closed; AcceptAsync throws ObjectDisposedException once the channel is empty.
            _closed.TrySetResult(reason);
            _accepted.Writer.TryComplete();
            await _stop.CancelAsync().ConfigureAwait(false);
        }
    }

    private async Task KeepAliveLoopAsync()
    {
        ulong token = 0;
        try
        {
            while (true)
            {
                await Task.Delay(KeepAliveInterval, _stop.Token).ConfigureAwait(false);
                await SendAsync(new RelayPing(++token)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            _control.Abort();
        }
    }

    /// <summary>Opens the data connection a splice request asked for; a failure only loses that one dial (the relay times it out).</summary>
    private async Task OpenDataConnectionAsync(byte[] spliceId)
    {
        IFlow? flow = null;
        try
        {
            flow = await _flows.ConnectAsync(LocalEndPoint, null, _stop.Token).ConfigureAwait(false);
            await flow.Stream.WriteAsync(new RelayAccept(_guid, spliceId).Encode(), _stop.Token).ConfigureAwait(false);
            await RelayFlows.ExpectOkAsync(flow.Stream, "accept", _stop.Token).ConfigureAwait(false);
            await _accepted.Writer.WriteAsync(new RelayedFlow(flow, LocalEndPoint), _stop.Token).ConfigureAwait(false);
            flow = null;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException or ChannelClosedException)
        {
            // The dialler is told by the relay (HostTimeout); this host has nothing to do.
        }
        finally
        {
            flow?.Abort();
        }
    }

    private async Task SendAsync(RelayMessage message)
    {
        await _writeGate.WaitAsync(_stop.Token).ConfigureAwait(false);
        try
        {
            await _control.Stream.WriteAsync(message.Encode(), _stop.Token).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async Task<RelayMessage?> ReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var read = await _reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = read.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            try
            {
                if (RelayMessage.TryRead(ref reader, out var message))
                {
                    _reader.AdvanceTo(reader.Position);
                    return message;
                }
            }
            catch (MalformedMessageException e)
            {
                throw new RelayException($"The relay at {LocalEndPoint} sent something else than the relay protocol: {e.Message}", e);
            }

            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted)
            {
                return null;
            }
        }
    }
}
