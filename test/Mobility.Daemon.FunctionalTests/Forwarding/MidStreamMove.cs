namespace Mobility.Daemon.FunctionalTests.Forwarding;

/// <summary>A stream that keeps flowing while the daemon at its far end moves to a new address.</summary>
internal static class MidStreamMove
{
    /// <summary>
    /// Sends <paramref name="chunks"/> chunks of 16 KiB, 10 ms apart; after the eleventh,
    /// <paramref name="server"/> moves to a fresh address and the send waits until its transport
    /// listens there. Returns every byte sent.
    /// </summary>
    public static async Task<byte[]> SendWhileServerMovesAsync(Socket client, DaemonInstance server, int chunks)
    {
        var sent = new List<byte>();
        for (var i = 0; i < chunks; i++)
        {
            var chunk = RandomNumberGenerator.GetBytes(16 * 1024);
            sent.AddRange(chunk);
            await client.SendAsync(chunk).WithTimeout();
            if (i == 10)
            {
                var moved = DaemonInstance.NewAddress();
                await server.Api.SetAddressesAsync([moved]).WithTimeout();
                await TestTimeout.Eventually(() => server.Forwarder.LocalEndPoint.Address.Equals(moved), "the server's transport moved");
            }

            await Task.Delay(10);
        }

        return [.. sent];
    }
}
