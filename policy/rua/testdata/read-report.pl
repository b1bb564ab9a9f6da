#!/usr/bin/perl
# Independent reader check: parse a report mail with Debian's
# libmail-dmarc-perl (Mail::DMARC::Report::Receive, the code behind
# dmarc_receive) and print what it understood as JSON to ARGV[1].
# save_aggregate is replaced so that no SQL store is needed.
use strict;
use warnings;
use JSON::PP;
use Mail::DMARC::Report::Receive;

my ($eml, $out) = @ARGV;
my $got;
{
    no warnings 'redefine';
    *Mail::DMARC::Report::save_aggregate = sub {
        my $self = shift;
        my $agg  = $self->aggregate;
        my $m    = $agg->metadata;
        my $p    = $agg->policy_published;
        my @recs;
        for my $r ( @{ $agg->record } ) {
            push @recs, {
                source_ip     => $r->row->source_ip,
                count         => 0 + $r->row->count,
                disposition   => $r->row->policy_evaluated->disposition,
                dkim          => $r->row->policy_evaluated->dkim,
                spf           => $r->row->policy_evaluated->spf,
                header_from   => $r->identifiers->header_from,
                envelope_from => $r->identifiers->envelope_from,
            };
        }
        $got = {
            report_id => $m->report_id,
            org_name  => $m->org_name,
            email     => $m->email,
            begin     => 0 + $m->begin,
            end       => 0 + $m->end,
            errors    => $m->error || [],
            domain    => $p->domain,
            p         => $p->p,
            pct       => 0 + $p->pct,
            records   => \@recs,
        };
        return 1;
    };
}
my $type = Mail::DMARC::Report::Receive->new->from_file($eml);
die "not an aggregate report: " . ( $type // 'undef' ) . "\n" unless ( $type // '' ) eq 'aggregate' && $got;
$got->{type} = $type;
open my $fh, '>', $out or die "$out: $!";
print $fh JSON::PP->new->canonical->encode($got);
close $fh;
