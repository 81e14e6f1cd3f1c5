using System.Net;
using System.Net.Sockets;

namespace Mobility.Gns.Client;

/// <summary>
/// How a client with several addresses of one GNS (IPv4 and IPv6) picks the one to use, the way Happy Eyeballs
/// (RFC 8305) picks an address: only addresses the host has a route to now are candidates (<see cref="Order"/>), and
/// when more than one is, they are raced (<see cref="RaceAsync{T}"/>): the first is probed at once, each next one a
/// stagger later (the head start of the preferred one) or as soon as every probe still running failed, and the first
/// that answers wins. Used by the daemon at start and by <see cref="GnsClient"/> whenever the host's addresses change.
/// </summary>
public static class GnsEndPointChoice
{
    /// <summary>
    /// The indexes of the endpoints of <paramref name="endPoints"/> the host can send to now, in order of
    /// preference: <paramref name="current"/> first (what works is kept, so a move does not flip a working
    /// family), then the others in their given order.
    /// </summary>
    public static IReadOnlyList<int> Order(IReadOnlyList<GnsEndPoint> endPoints, int current, Func<IPEndPoint, bool> hasRoute)
    {
        ArgumentNullException.ThrowIfNull(endPoints);
        ArgumentNullException.ThrowIfNull(hasRoute);
        var order = new List<int>(endPoints.Count);
        if (current >= 0 && current < endPoints.Count && hasRoute(endPoints[current].Udp))
        {
            order.Add(current);
        }

        for (var i = 0; i < endPoints.Count; i++)
        {
            if (i != current && hasRoute(endPoints[i].Udp))
            {
                order.Add(i);
            }
        }

        return order;
    }

    /// <summary>
    /// True when the kernel has a route and a source address for <paramref name="endPoint"/> now: a datagram
    /// socket is connected to it, which sends nothing (a host that lost its last IPv4 address has no IPv4
    /// route; one without IPv6 cannot open the socket).
    /// </summary>
    public static bool KernelHasRoute(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        try
        {
            using var socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            socket.Connect(endPoint);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// The first of <paramref name="candidates"/> whose probe answered true, or null when none did within
    /// <paramref name="budget"/>. The first probe starts at once; each next one <paramref name="stagger"/> after the
    /// previous (RFC 8305's connection attempt delay), or at once when a probe fails. The probes still running when
    /// one wins are cancelled. A probe that throws <see cref="GnsException"/>, <see cref="SocketException"/> or
    /// <see cref="OperationCanceledException"/> failed.
    /// </summary>
    public static async Task<T?> RaceAsync<T>(IReadOnlyList<T> candidates, Func<T, CancellationToken, Task<bool>> probe,
        TimeSpan stagger, TimeSpan budget, TimeProvider time, CancellationToken cancellationToken) where T : class
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(time);
        if (candidates.Count == 0)
        {
            return null;
        }

        using var deadline = new CancellationTokenSource(budget, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var token = linked.Token;
        var running = new List<Task<(T Candidate, bool Ok)>> { Run(probe, candidates[0], token) };
        var next = 1;
        try
        {
            while (running.Count > 0 && !token.IsCancellationRequested)
            {
                // An answer, or the stagger running out, whichever comes first.
                var wait = next < candidates.Count ? Task.Delay(stagger, time, token) : Task.Delay(Timeout.Infinite, token);
                var done = await Task.WhenAny([.. running, wait]).ConfigureAwait(false);
                if (done != wait)
                {
                    var finished = (Task<(T Candidate, bool Ok)>)done;
                    running.Remove(finished);
                    var (candidate, ok) = await finished.ConfigureAwait(false);
                    if (ok)
                    {
                        return candidate;
                    }
                }

                // The stagger ran out, or an attempt failed (which starts the next at once: RFC 8305, section 5).
                if (next < candidates.Count && !token.IsCancellationRequested)
                {
                    running.Add(Run(probe, candidates[next++], token));
                }
            }

            return null;
        }
        finally
        {
            // Abandon the probes still running; each ends on the cancellation.
            await linked.CancelAsync().ConfigureAwait(false);
        }
    }

    private static async Task<(T, bool)> Run<T>(Func<T, CancellationToken, Task<bool>> probe, T candidate, CancellationToken cancellationToken)
    {
        try
        {
            return (candidate, await probe(candidate, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception e) when (e is GnsException or OperationCanceledException or SocketException)
        {
            return (candidate, false);
        }
    }
}
