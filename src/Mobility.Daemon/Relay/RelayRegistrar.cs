using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;
using Mobility.Transport;
using Mobility.Transport.Relay;

namespace Mobility.Daemon.Relay;

/// <summary>
/// Keeps this host registered at one of its home relays (<c>--relay</c>): registers at the first that
/// accepts, serves the relay's data connections on the transport listener, and when the registration
/// ends (the relay died or restarted) registers again, at the next relay first, with capped exponential
/// back-off and jitter while none accepts. <see cref="Current"/> is the relay to publish as a Relay
/// locator; <see cref="Changed"/> fires whenever it changes.
/// </summary>
public sealed partial class RelayRegistrar : IAsyncDisposable
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);

    private readonly HostKey _key;
    private readonly IReadOnlyList<IPEndPoint> _relays;
    private readonly MobileListener _listener;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private IPEndPoint? _current;
    private Task _loop = Task.CompletedTask;

    public RelayRegistrar(HostKey key, IReadOnlyList<IPEndPoint> relays, MobileListener listener, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(relays);
        ArgumentOutOfRangeException.ThrowIfZero(relays.Count);
        _key = key;
        _relays = relays;
        _listener = listener;
        _logger = logger;
    }

    /// <summary>The relay this host is registered at now; null while it is at none.</summary>
    public IPEndPoint? Current => Volatile.Read(ref _current);

    /// <summary>Raised (on the registrar's loop) when <see cref="Current"/> changed.</summary>
    public event EventHandler? Changed;

    public void Start() => _loop = Task.Run(() => RunAsync(_stop.Token));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var next = 0;
        var backoff = MinBackoff;
        while (!ct.IsCancellationRequested)
        {
            var relay = _relays[next];
            next = (next + 1) % _relays.Count;
            RelayFlowListener registration;
            try
            {
                registration = await RelayFlowListener.RegisterAsync(_key, relay, cancellationToken: ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                Log.RegistrationFailed(_logger, relay, e.Message);
                try
                {
                    await Task.Delay(backoff + (backoff * Random.Shared.NextDouble() / 2), ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                continue;
            }

            backoff = MinBackoff;
            Log.Registered(_logger, relay);
            SetCurrent(relay);
            await using (registration.ConfigureAwait(false))
            {
                using var stop = ct.Register(() => _ = registration.DisposeAsync().AsTask());
                await _listener.ServeAsync(registration).ConfigureAwait(false);
                var reason = registration.Closed.IsCompleted ? await registration.Closed.ConfigureAwait(false) : null;
                if (!ct.IsCancellationRequested)
                {
                    Log.RegistrationFailed(_logger, relay, $"the registration ended ({reason?.Message ?? "closed"}); registering again");
                }
            }

            // Registers again, at the next relay of the list first (the one that just ended is tried last).
            SetCurrent(null);
        }
    }

    private void SetCurrent(IPEndPoint? relay)
    {
        Volatile.Write(ref _current, relay);
        Changed?.Invoke(this, EventArgs.Empty);
    }

    private static partial class Log
    {
        [LoggerMessage(10400, LogLevel.Information, "Registered at relay {Relay}: published as a relay locator")]
        public static partial void Registered(ILogger logger, IPEndPoint relay);

        [LoggerMessage(10401, LogLevel.Warning, "Registration at relay {Relay} failed: {Reason}")]
        public static partial void RegistrationFailed(ILogger logger, IPEndPoint relay, string reason);
    }
}
