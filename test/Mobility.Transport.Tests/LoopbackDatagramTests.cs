using System.Buffers.Binary;

namespace Mobility.Transport.Tests;

/// <summary>Datagrams over real loopback sockets: beside a bulk stream, and across moves of either end.</summary>
public class LoopbackDatagramTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(MoveKind.Client)]
    [InlineData(MoveKind.Server)]
    public async Task Datagrams_flow_both_ways_before_and_after_each_move(MoveKind kind)
    {
        var net = LoopbackScenario.NextSubnet();
        IPAddress ClientAddress(int i) => IPAddress.Parse($"127.{net}.1.{1 + i}");
        IPAddress ServerAddress(int i) => IPAddress.Parse($"127.{net}.2.{1 + i}");
        var locator = new TestLocator();
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(ServerAddress(0), 0));
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions { LocalAddress = ClientAddress(0) });
        var acceptTask = listener.AcceptAsync().AsTask();
        await using var client = await connector.ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        await using var server = await acceptTask.WithTimeout();
        var resumed = new SemaphoreSlim(0);
        client.Diagnostic += (_, e) =>
        {
            if (e.Kind == MobileConnectionEventKind.Resumed)
            {
                resumed.Release();
            }
        };

        const int Moves = 3;
        for (var round = 0; round <= Moves; round++)
        {
            if (round > 0)
            {
                if (kind == MoveKind.Client)
                {
                    connector.NotifyLocalAddressChanged(ClientAddress(round));
                }
                else
                {
                    locator.Push(Keys.Server.Guid, await listener.RebindAsync(new IPEndPoint(ServerAddress(round), 0)).WithTimeout());
                }

                Assert.True(await resumed.WaitAsync(TestTimeout.Default), $"move {round} did not resume");
            }

            // Each way: sent until one arrives (a datagram sent into a dead path is lost, not resent).
            await ExchangeAsync(client, server, round).WithTimeout();
            await ExchangeAsync(server, client, round).WithTimeout();
        }

        Assert.True(client.Statistics.Moves >= Moves);
        Assert.Equal(LocalEndPointOf(kind, client, server), kind == MoveKind.Client ? ClientAddress(Moves) : ServerAddress(Moves));
        output.WriteLine($"{kind}: client {client.Statistics.Datagrams}; server {server.Statistics.Datagrams}");
    }

    private static IPAddress? LocalEndPointOf(MoveKind kind, MobileConnection client, MobileConnection server)
        => kind == MoveKind.Client ? client.LocalEndPoint?.Address : server.LocalEndPoint?.Address;

    /// <summary>Sends datagrams tagged with <paramref name="round"/> from one end until the other receives one of them.</summary>
    private static async Task ExchangeAsync(MobileConnection from, MobileConnection to, int round)
    {
        using var stop = new CancellationTokenSource();
        var sender = Task.Run(async () =>
        {
            var sequence = 0;
            while (!stop.IsCancellationRequested)
            {
                var datagram = new byte[8];
                BinaryPrimitives.WriteInt32BigEndian(datagram, round);
                BinaryPrimitives.WriteInt32BigEndian(datagram.AsSpan(4), sequence++);
                from.SendDatagram(datagram);
                await Task.Delay(10, CancellationToken.None);
            }
        });
        var buffer = new byte[MobileConnection.MaxDatagramSize];
        try
        {
            while (true)
            {
                var length = await to.ReceiveDatagramAsync(buffer);
                Assert.Equal(8, length);
                if (BinaryPrimitives.ReadInt32BigEndian(buffer) == round)
                {
                    return;
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            await sender;
        }
    }

    [Fact]
    public async Task A_stream_completes_intact_while_datagrams_flood_and_datagrams_get_through_beside_it()
    {
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var acceptTask = listener.AcceptAsync().AsTask();
        await using var client = await new MobileConnector(Keys.Client).ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        await using var server = await acceptTask.WithTimeout();

        const long Bytes = 32L << 20;
        using var flooding = new CancellationTokenSource();
        var flood = Task.Run(() =>
        {
            // Largest datagrams, as fast as the queue takes them: without sharing the batch they would fill every write.
            var datagram = new byte[MobileConnection.MaxDatagramSize];
            long queued = 0, refused = 0;
            while (!flooding.IsCancellationRequested)
            {
                if (client.SendDatagram(datagram))
                {
                    queued++;
                }
                else
                {
                    // Refused: the queue was full (DroppedOnSend) or the connection had no path (DroppedPathless).
                    refused++;
                    Thread.Yield();
                }
            }

            return (queued, refused);
        });
        var drain = Task.Run(async () =>
        {
            var buffer = new byte[MobileConnection.MaxDatagramSize];
            long received = 0;
            while (await server.ReceiveDatagramAsync(buffer) > 0)
            {
                received++;
            }

            return received;
        });

        var receive = Task.Run(() => PatternSource.ReceiveAsync(server.Stream));
        var sent = await PatternSource.SendAsync(client.Stream, Bytes, 5).WithTimeout(TimeSpan.FromMinutes(2));
        client.ShutdownWrite();
        var (length, hash) = await receive.WithTimeout(TimeSpan.FromMinutes(2));
        await flooding.CancelAsync();
        var (queued, refused) = await flood.WithTimeout();
        Assert.Equal(Bytes, length);
        Assert.Equal(sent, hash);

        // Loopback loses nothing: every datagram queued is laid out, and arrives (read, or dropped by a full receive queue).
        // A starved machine may declare the silent flow dead and resume once (the stream survives it intact, above); the
        // datagrams that were on the abandoned flow or queued while it had no path are gone then, as datagrams may be.
        bool Moved() => client.Statistics.Moves + server.Statistics.Moves + client.Statistics.StandbySwitches > 0;
        try
        {
            await TestTimeout.Eventually(() =>
            {
                var sending = client.Statistics.Datagrams;
                var arriving = server.Statistics.Datagrams.Received + server.Statistics.Datagrams.DroppedOnReceive;
                // DroppedPathless counts both the datagrams queued and then dropped when the path went and those refused
                // while there was none; every refusal is one of those or a full queue (DroppedOnSend, only this sender's).
                var droppedFromQueue = sending.DroppedPathless - (refused - sending.DroppedOnSend);
                return Moved()
                    ? sending.Sent + droppedFromQueue == queued && arriving <= sending.Sent
                    : sending.Sent == queued && arriving == queued;
            }, "every datagram delivered or counted");
        }
        catch (TimeoutException e)
        {
            // Once seen under a full suite's load (not reproduced alone): say which count did not add up.
            throw new TimeoutException($"{e.Message} queued {queued}, refused {refused}; client {client.Statistics.Datagrams}; server {server.Statistics.Datagrams}; " +
                $"moves {client.Statistics.Moves}/{server.Statistics.Moves}, standby switches {client.Statistics.StandbySwitches}; client {client.State}", e);
        }
        var closing = client.CloseAsync();
        await server.CloseAsync().WithTimeout();
        await closing.WithTimeout();
        var received = await drain.WithTimeout();
        var stats = client.Statistics.Datagrams;
        Assert.True(received > 0, "no datagram got through beside the stream");
        output.WriteLine($"client {stats}; server {server.Statistics.Datagrams}; read {received}; moves {client.Statistics.Moves}/{server.Statistics.Moves}");
        if (!Moved())
        {
            Assert.Equal(0, stats.DroppedPathless);
        }
    }
}
