namespace Mobility.Transport.Tests;

public sealed class ListenerBurstTests
{
    [Fact]
    public async Task A_burst_of_connections_beyond_the_handshake_slots_queues_instead_of_being_reset()
    {
        const int count = 100;
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions
        {
            MaxPendingHandshakes = 4,
            AcceptBacklog = count,
        });
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var connector = new MobileConnector(Keys.Client);
        var maxPending = 0;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                maxPending = Math.Max(maxPending, listener.PendingHandshakes);
                await Task.Delay(1);
            }
        });

        // All at once, from one host: more than the slots, far less than the queue.
        var opens = Enumerable.Range(0, count).Select(_ => connector.ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid)).ToArray();
        var clients = await Task.WhenAll(opens).WithTimeout();
        try
        {
            // The client is done once it sent ClientFinish; the server registers after verifying it.
            await TestTimeout.Eventually(() => listener.Connections.Count == count, "the server holds every connection");
            await stop.CancelAsync();
            await sampler;
            Assert.InRange(maxPending, 0, 4);
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }
}
