using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.GnsServers;

/// <summary>
/// Picks the GNS endpoint the daemon uses among several (<see cref="GnsServerList"/>), the way Happy
/// Eyeballs (RFC 8305) picks an address: the candidates are probed in order, the next one starting
/// <see cref="Stagger"/> after the previous (or as soon as it failed), and the first that answers wins;
/// the others are abandoned. A probe is a lookup of a GUID nobody holds: any answer, "not found"
/// included, proves the endpoint serves the GNS protocol over a path that works.
/// </summary>
public sealed partial class GnsServerSelector
{
    /// <summary>Delay before the next candidate is tried: RFC 8305's recommended connection attempt delay.</summary>
    public TimeSpan Stagger { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How long one probe waits for its answer (one retransmission included).</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The whole selection's budget; when it runs out with no answer, the first candidate is used.</summary>
    public TimeSpan Budget { get; init; } = TimeSpan.FromSeconds(3);

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Answers whether the GNS at an endpoint responded; replaced in tests of the ordering only.</summary>
    public Func<IPEndPoint, CancellationToken, Task<bool>>? Probe { get; init; }

    /// <summary>
    /// Resolves <paramref name="servers"/> and returns the endpoint that answered first, or the first
    /// candidate when none did within <see cref="Budget"/>. Throws <see cref="IOException"/> when no name
    /// resolves and no address was given.
    /// </summary>
    public async Task<IPEndPoint> ChooseAsync(GnsServerList servers, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(servers);
        ArgumentNullException.ThrowIfNull(logger);
        var unresolved = new List<string>();
        var candidates = await servers.ResolveAsync(unresolved, cancellationToken).ConfigureAwait(false);
        if (candidates.Count == 0)
        {
            throw new IOException($"{MobilitydOptions.GnsOption}: no address found for {string.Join(", ", unresolved)}.");
        }

        var tried = string.Join(' ', candidates) + (unresolved.Count == 0 ? "" : $"; unresolved: {string.Join(", ", unresolved)}");
        if (await SelectAsync(candidates, cancellationToken).ConfigureAwait(false) is { } chosen)
        {
            Log.Chosen(logger, chosen, tried);
            return chosen;
        }

        Log.NoneAnswered(logger, tried, candidates[0]);
        return candidates[0];
    }

    /// <summary>The first of <paramref name="candidates"/> whose probe succeeded, or null when none did within <see cref="Budget"/>.</summary>
    public async Task<IPEndPoint?> SelectAsync(IReadOnlyList<IPEndPoint> candidates, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        if (candidates.Count == 0)
        {
            return null;
        }

        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(Budget);
        var probe = Probe ?? ProbeAsync;
        var running = new List<Task<(IPEndPoint EndPoint, bool Ok)>> { Run(probe, candidates[0], budget.Token) };
        var next = 1;
        try
        {
            while (running.Count > 0 && !budget.IsCancellationRequested)
            {
                // An answer, or the stagger running out, whichever comes first.
                var stagger = next < candidates.Count ? Task.Delay(Stagger, TimeProvider, budget.Token) : Task.Delay(Timeout.Infinite, budget.Token);
                var done = await Task.WhenAny([.. running, stagger]).ConfigureAwait(false);
                if (done != stagger)
                {
                    var finished = (Task<(IPEndPoint EndPoint, bool Ok)>)done;
                    running.Remove(finished);
                    var (endPoint, ok) = await finished.ConfigureAwait(false);
                    if (ok)
                    {
                        return endPoint;
                    }
                }

                // The stagger ran out, or an attempt failed (which starts the next at once: RFC 8305, section 5).
                if (next < candidates.Count && !budget.IsCancellationRequested)
                {
                    running.Add(Run(probe, candidates[next++], budget.Token));
                }
            }

            return null;
        }
        finally
        {
            // Abandon the probes still running; each ends on the cancellation.
            await budget.CancelAsync().ConfigureAwait(false);
        }
    }

    private static async Task<(IPEndPoint, bool)> Run(Func<IPEndPoint, CancellationToken, Task<bool>> probe, IPEndPoint candidate, CancellationToken cancellationToken)
    {
        try
        {
            return (candidate, await probe(candidate, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception e) when (e is GnsException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
            return (candidate, false);
        }
    }

    private async Task<bool> ProbeAsync(IPEndPoint candidate, CancellationToken cancellationToken)
    {
        var client = new GnsClient(new GnsClientOptions
        {
            Server = candidate,
            CacheEnabled = false,
            Attempts = 2,
            RequestTimeout = ProbeTimeout / 2,
            MaxAttemptTimeout = ProbeTimeout / 2,
            TimeProvider = TimeProvider,
        });
        await using (client.ConfigureAwait(false))
        {
            var nobody = HostGuid.FromBytes(RandomNumberGenerator.GetBytes(HostGuid.Size));
            await client.LookupAsync(nobody, cancellationToken).ConfigureAwait(false);
            return true;
        }
    }

    /// <summary>Log events of the GNS endpoint choice (ids 4100-4119).</summary>
    private static partial class Log
    {
        [LoggerMessage(4100, LogLevel.Information, "GNS at {EndPoint} answered first of {Candidates}")]
        public static partial void Chosen(ILogger logger, IPEndPoint endPoint, string candidates);

        [LoggerMessage(4101, LogLevel.Warning, "No GNS answered among {Candidates}; using {EndPoint}")]
        public static partial void NoneAnswered(ILogger logger, string candidates, IPEndPoint endPoint);
    }
}
