namespace Mobility.Daemon.FunctionalTests.Infrastructure;

/// <summary>
/// The forwarding tests' common stage: an echo server on 127.0.0.1 exposed by daemon B (the server host)
/// and daemon A (the client host, whose SOCKS5 endpoint the test uses), both forwarding, B registered
/// in the GNS by the time <see cref="StartAsync"/> returns.
/// </summary>
public sealed class ExposedEcho : IAsyncDisposable
{
    private ExposedEcho(EchoServer echo, DaemonInstance server, DaemonInstance client)
    {
        Echo = echo;
        Server = server;
        Client = client;
    }

    public EchoServer Echo { get; }

    /// <summary>Daemon B: exposes <see cref="Echo"/>.</summary>
    public DaemonInstance Server { get; }

    /// <summary>Daemon A: the application's side.</summary>
    public DaemonInstance Client { get; }

    /// <param name="gns">A GNS client per daemon (each daemon owns the one it is given).</param>
    /// <param name="registered">Completes once B's record is in the GNS.</param>
    public static async Task<ExposedEcho> StartAsync(Func<IGnsClient> gns, Func<DaemonInstance, Task> registered)
    {
        var echo = new EchoServer();
        DaemonInstance? server = null;
        DaemonInstance? client = null;
        try
        {
            server = await DaemonInstance.StartForwardingAsync(gns());
            client = await DaemonInstance.StartForwardingAsync(gns());
            await registered(server);
            server.Api.Expose(echo.Port);
            return new ExposedEcho(echo, server, client);
        }
        catch
        {
            if (client is not null)
            {
                await client.DisposeAsync();
            }

            if (server is not null)
            {
                await server.DisposeAsync();
            }

            await echo.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Server.DisposeAsync();
        await Echo.DisposeAsync();
    }
}
