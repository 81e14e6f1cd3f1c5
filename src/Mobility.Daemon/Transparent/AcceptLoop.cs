using System.Net.Sockets;

namespace Mobility.Daemon.Transparent;

/// <summary>The accept step the stub's TCP listener and the interception listener share.</summary>
internal static class AcceptLoop
{
    /// <summary>The next connection; a failed accept (a client gone before it was taken) is skipped; null once stopping or the listener is closed.</summary>
    public static async Task<Socket?> NextAsync(Socket listener, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                return await listener.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (SocketException) when (!stopping.IsCancellationRequested)
            {
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return null;
            }
        }

        return null;
    }
}
