using Microsoft.AspNetCore.Connections;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Relay;

namespace Mobility.Relay.Registry;

/// <summary>
/// A registered host's control connection. Its handler is the only reader; the writers (its own
/// pongs, and every dial's splice request) take turns through one gate. <see cref="Ended"/> fires when
/// the registration ends (replaced by a newer one, or its connection closed, failed or idled out): the
/// splices that ran to this registration end with it, so their diallers resume at once.
/// </summary>
internal sealed class HostSession(HostGuid guid, ConnectionContext connection)
{
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly CancellationTokenSource _ended = new();

    public HostGuid Guid { get; } = guid;

    public ConnectionContext Connection { get; } = connection;

    /// <summary>Writes one message and flushes; false when the connection is gone or <paramref name="cancellationToken"/> fired first.</summary>
    public async Task<bool> SendAsync(RelayMessage message, CancellationToken cancellationToken)
    {
        try
        {
            await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }

        try
        {
            var result = await Connection.Transport.Output.WriteAsync(message.Encode(), cancellationToken).ConfigureAwait(false);
            return !result.IsCompleted && !result.IsCanceled;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or ConnectionResetException)
        {
            return false;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Fires once the registration has ended (<see cref="End"/>).</summary>
    public CancellationToken Ended => _ended.Token;

    /// <summary>Closes the control connection (a newer registration of the same GUID replaced it) and ends the registration.</summary>
    public void Close()
    {
        Connection.Abort(new ConnectionAbortedException("Replaced by a newer registration of the same GUID."));
        End();
    }

    /// <summary>Ends the registration: <see cref="Ended"/> fires (its splices are cut). Idempotent.</summary>
    public void End() => _ended.Cancel();
}
