"""SIP test data: sipp scenarios and a generator of RTP pcap files for sipp to play."""
