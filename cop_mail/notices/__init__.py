"""Notices to coordinators: "your campaign has finished" and "your import is done".

A notice goes to the coordinator who started the work, if their account is active and they
have not switched notices off on their account page. A periodic scan finds finished work
without a notice and claims each row by setting `notice_sent_at` before sending, so two
schedulers never send the same notice; a failed send clears the mark for the next scan.
"""
