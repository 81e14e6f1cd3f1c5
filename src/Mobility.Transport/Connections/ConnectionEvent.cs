using System.IO.Pipelines;
using System.Net;
using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Connections;

/// <summary>
/// Something handed to a connection's loop (<see cref="MobileConnection"/>'s single reader): the
/// loop alone changes the connection's state, so every thread that wants something of it (the
/// application, a path's receive loop or write, the timer, the path supervisor, the listener)
/// posts one of these and, where it needs an answer, awaits a completion the loop sets.
/// </summary>
internal abstract class ConnectionEvent;

/// <summary>The application writes <see cref="Data"/>; completed once all of it is in the send buffer.</summary>
internal sealed class AppWrite(ReadOnlyMemory<byte> data) : ConnectionEvent
{
    public ReadOnlyMemory<byte> Data { get; set; } = data;

    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>The application reads into <see cref="Buffer"/>; completed with the count once bytes (or the end) are there.</summary>
internal sealed class AppRead(Memory<byte> buffer) : ConnectionEvent
{
    public Memory<byte> Buffer { get; } = buffer;

    public TaskCompletionSource<int> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>The caller of a parked read or write gave up (its token was cancelled).</summary>
internal sealed class AppCancel(ConnectionEvent operation, CancellationToken token) : ConnectionEvent
{
    public ConnectionEvent Operation { get; } = operation;

    public CancellationToken Token { get; } = token;
}

/// <summary>The application shut down its side (FIN after everything written).</summary>
internal sealed class AppShutdownWrite : ConnectionEvent;

/// <summary>One authenticated frame opened by a path's receive loop (a DATA body is in a rented array).</summary>
internal readonly record struct ReceivedFrame(FrameType Type, ulong Counter, byte[]? Array, int Length, ulong Value1, ulong Value2);

/// <summary>Frames a path's receive loop opened; <see cref="Processed"/> tells it whether to keep reading (false: the path is no longer active).</summary>
internal sealed class FramesReceived(ConnectionPath path, List<ReceivedFrame> frames) : ConnectionEvent
{
    public ConnectionPath Path { get; } = path;

    public List<ReceivedFrame> Frames { get; } = frames;

    public TaskCompletionSource<bool> Processed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>Client: a resumed path's Resume was answered (<see cref="Ack"/>, verified by the receive loop) or refused (<see cref="Reject"/>).</summary>
internal sealed class ResumeAnswered(ConnectionPath path, ResumeAck? ack, RejectReason? reject) : ConnectionEvent
{
    public ConnectionPath Path { get; } = path;

    public ResumeAck? Ack { get; } = ack;

    public RejectReason? Reject { get; } = reject;
}

/// <summary>A path's flow ended cleanly (the peer closed it).</summary>
internal sealed class FlowEnded(ConnectionPath path) : ConnectionEvent
{
    public ConnectionPath Path { get; } = path;
}

/// <summary>A path failed (<see cref="Path"/> null: whichever path is active), or must be dropped.</summary>
internal sealed class PathLost(ConnectionPath? path, string reason, IPAddress? onlyOnLocalAddress = null, IPAddress? callBackFrom = null) : ConnectionEvent
{
    /// <summary>Server: the address the listener moved to, from which the client is called back (<see cref="MobileTransportOptions.CallBack"/>).</summary>
    public IPAddress? CallBackFrom { get; } = callBackFrom;

    public ConnectionPath? Path { get; } = path;

    public string Reason { get; } = reason;

    /// <summary>Drop the active path only if its flow runs over this local address.</summary>
    public IPAddress? OnlyOnLocalAddress { get; } = onlyOnLocalAddress;

    /// <summary>Client: the path is lost because this host's address went (what left the host before most likely arrived).</summary>
    public bool LocalAddressGone { get; init; }
}

/// <summary>A write laid out by the loop finished on <see cref="Path"/> (<see cref="Error"/> null: written).</summary>
internal sealed class WriteDone(ConnectionPath path, bool reset, Exception? error) : ConnectionEvent
{
    public ConnectionPath Path { get; } = path;

    public bool Reset { get; } = reset;

    public Exception? Error { get; } = error;
}

/// <summary>The connection's timer fired.</summary>
internal sealed class TimerTick : ConnectionEvent
{
    public static readonly TimerTick Instance = new();
}

/// <summary>A new path: the handshake's flow (<see cref="Resume"/> false) or a client's resumed flow.</summary>
internal sealed class PathStarted(ConnectionPath path, bool resume) : ConnectionEvent
{
    public ConnectionPath Path { get; } = path;

    public bool Resume { get; } = resume;
}

/// <summary>Server: a Resume arrived on <see cref="Flow"/> (its MAC already checked off the loop).</summary>
internal sealed class ResumeOffered(IFlow flow, PipeReader reader, ResumeRequest request, bool macValid) : ConnectionEvent
{
    public IFlow Flow { get; } = flow;

    public PipeReader Reader { get; } = reader;

    public ResumeRequest Request { get; } = request;

    public bool MacValid { get; } = macValid;

    public TaskCompletionSource<RejectReason?> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// Client: a CallBack or a Reverse arrived on an accepted flow; its MAC already checked (<see cref="MacValid"/>), the loop
/// checks the rest and answers (true: the connection goes on on <see cref="Flow"/>).
/// </summary>
internal sealed class ServerDialOffered<TRequest>(IFlow flow, PipeReader reader, TRequest request, bool macValid) : ConnectionEvent
    where TRequest : ServerDialRequest
{
    public IFlow Flow { get; } = flow;

    public PipeReader Reader { get; } = reader;

    public TRequest Request { get; } = request;

    public bool MacValid { get; } = macValid;

    public TaskCompletionSource<bool> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>Fail the connection (the first reason wins), with a RESET to the peer when <see cref="ResetCode"/> is set.</summary>
internal sealed class FailRequested(Exception reason, uint? resetCode) : ConnectionEvent
{
    public Exception Reason { get; } = reason;

    public uint? ResetCode { get; } = resetCode;
}

/// <summary>Client: the server does not know the connection any more.</summary>
internal sealed class UnknownToPeer(IPEndPoint endpoint) : ConnectionEvent
{
    public IPEndPoint Endpoint { get; } = endpoint;
}

/// <summary>The path supervisor started a resume attempt.</summary>
internal sealed class ResumeAttemptCounted : ConnectionEvent
{
    public static readonly ResumeAttemptCounted Instance = new();
}

/// <summary>Dispose: answers with the tasks still winding down (retired paths, the supervisor).</summary>
internal sealed class DrainRequested : ConnectionEvent
{
    public TaskCompletionSource<Task[]> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>Completed when the loop reaches it: everything posted before it has been handled (for tests on virtual time).</summary>
internal sealed class LoopBarrier : ConnectionEvent
{
    public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>Dispose, last: the loop frees the buffers and ends.</summary>
internal sealed class LoopShutdown : ConnectionEvent;
